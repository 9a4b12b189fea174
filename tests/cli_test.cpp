// The p2l binary end to end: `info`, `sample`, and one-line errors with a non-zero exit.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli_runner.h"
#include "goldens.h"
#include "p2l/io/image.h"

namespace p2l::test {
namespace {

namespace fs = std::filesystem;

RunResult run_cli(const std::string& args) { return run_p2l(args); }

TEST(Cli, InfoDescribesBothLayouts) {
  for (const auto& path : {Goldens::get().diffusers_dir(), Goldens::get().single_file()}) {
    auto r = run_cli("info --json " + path);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto info = nlohmann::json::parse(r.out);
    EXPECT_GT(info["unet"]["parameters"].get<int64_t>(), 0);
    EXPECT_EQ(info["storage_dtype"], Goldens::get().meta()["precision"]["weight_storage"]);
  }
}

TEST(Cli, SampleWritesAPng) {
  const auto out = fs::path(::testing::TempDir()) / "p2l_sample.png";
  fs::remove(out);
  auto r = run_cli("sample -m " + Goldens::get().diffusers_dir() +
                   " -p \"a photo of a cat\" --steps 2 -W 64 -H 48 --seed 3 --threads 1 -o " +
                   out.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto img = io::load_image(out.string());
  EXPECT_EQ(img.sizes(), (std::vector<int64_t>{1, 3, 48, 64}));
  EXPECT_NE(r.err.find("sampling 2/2"), std::string::npos) << r.err;  // progress is shown
  // Same seed, same image.
  const auto again = fs::path(::testing::TempDir()) / "p2l_sample2.png";
  r = run_cli("sample -m " + Goldens::get().diffusers_dir() +
              " -p \"a photo of a cat\" --steps 2 -W 64 -H 48 --seed 3 --threads 1 -o " +
                  again.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(torch::equal(img, io::load_image(again.string())));
}

TEST(Cli, BadInputGivesOneLineErrorAndNonZeroExit) {
  const std::string model = Goldens::get().diffusers_dir();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"sample -m /nonexistent/model -p x", "/nonexistent/model"},
      {"sample -m " + model + " -W 60 -H 64", "multiples"},
      {"sample -m " + model + " --steps 0", "--steps"},
      {"sample -m " + model + " --device cuda:7", "--device"},
      {"sample -m " + model + " --eta 2", "--eta"},
      {"info " + fs::path(::testing::TempDir()).string(), "not a model"},
      {"frobnicate", "frobnicate"},
  };
  for (const auto& [args, culprit] : cases) {
    auto r = run_cli(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_NE(r.err.find(culprit), std::string::npos) << args << "\n" << r.err;
    EXPECT_LE(count_lines(r.err), 2) << args << "\n" << r.err;
  }
}

}  // namespace
}  // namespace p2l::test
