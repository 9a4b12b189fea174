// Runs the p2l binary from the end-to-end tests and captures what it printed.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace p2l::test {

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// `p2l ARGS` with stdout/stderr captured in `dir` under the current test's name (tests run in
// parallel by ctest do not share files).
inline size_t count_occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

inline RunResult run_p2l(const std::string& args,
                         const std::filesystem::path& dir = ::testing::TempDir()) {
  const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  const auto out = dir / ("p2l_" + test + ".out"), err = dir / ("p2l_" + test + ".err");
  const std::string cmd = std::string(P2L_CLI_PATH) + " " + args + " >" + out.string() + " 2>" +
                          err.string() + " </dev/null";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

// Checks a run that must fail: non-zero exit, one line "p2l: error: …" containing `expected`.
inline void expect_one_line_error(const RunResult& r, const std::string& expected) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.rfind("p2l: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
}

}  // namespace p2l::test
