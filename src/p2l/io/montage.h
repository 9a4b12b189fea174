// A grid of images in one picture (demo and evaluation montages): rows × columns of
// [1, 3, h, w] images in [-1, 1], each up-sampled (nearest) to the largest size, on white with a
// gap between cells. Empty (undefined) cells stay white.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace p2l::io {

torch::Tensor montage(const std::vector<std::vector<torch::Tensor>>& rows, int64_t gap = 2);

}  // namespace p2l::io
