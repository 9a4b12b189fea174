// What the fuzz targets share: the scratch files through which an input reaches the APIs that
// take a path, and the split of one input into two files.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>

namespace p2l::fuzz {

// One folder per process under /dev/shm (memory, not the disk: one write per execution), so
// that two campaigns never read each other's files; removed when the process exits normally.
inline const std::string& scratch_dir() {
  // Never destroyed: the exit handler below runs after the destructors of statics built later.
  static const std::string* dir = [] {
    const auto* d = new std::string("/dev/shm/p2l-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(*d);
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(scratch_dir(), ignored);
    });
    return d;
  }();
  return *dir;
}

// Writes `bytes` to scratch_dir()/name and returns the path.
inline std::string write_scratch(const std::string& name, std::string_view bytes) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Inputs that feed two files (JSON + tensors, vocab + merges) hold both, separated by the first
// kSplit; without one the second file is empty. A separator rather than a length prefix keeps
// most mutations inside one of the two parts; it is in the targets' dictionaries.
constexpr std::string_view kSplit = "\n@@p2l-fuzz-split@@\n";

inline std::pair<std::string_view, std::string_view> split_input(std::string_view input) {
  const size_t at = input.find(kSplit);
  if (at == std::string_view::npos) return {input, {}};
  return {input.substr(0, at), input.substr(at + kSplit.size())};
}

}  // namespace p2l::fuzz
