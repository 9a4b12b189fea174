// What this build of p2l computes with: LibTorch's version, CUDA and cuDNN when present, the
// attention path chosen at compile time, and which precisions each device accepts (`p2l --version`).
#pragma once

#include <string>

namespace p2l {

std::string build_info();

}  // namespace p2l
