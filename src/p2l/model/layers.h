// Layer builders the networks share: LibTorch's option chains, written once.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace p2l::model {

inline torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1,
                              int64_t pad = 0) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(pad));
}

inline torch::nn::GroupNorm group_norm(int64_t groups, int64_t channels, double eps) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(eps));
}

// An empty module that only gives the parameters registered under it their path in the
// checkpoint's layout (encoder.down.0.block.1, ff.net.0.proj, ...).
struct Holder : torch::nn::Module {};

}  // namespace p2l::model
