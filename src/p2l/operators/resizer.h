// Bicubic resampling with antialiasing, the convention of the "Resizer" that DPS and PSLD use
// for super-resolution (after MATLAB's imresize; tests/goldens/ops/NOTES.md §1): Keys cubic
// (a = −0.5), widened by 1/s when down-scaling, half-sample symmetric boundary, output length
// ceil(n·s) with the grid re-centred when n·s is not an integer. Separable: each image dim is
// multiplied by a dense [out, in] matrix, which makes the exact adjoint a matrix transpose.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace p2l::operators {

// ceil(n·scale), computed in double as the reference does (50·¼ → 13).
int64_t resized_length(int64_t in_length, double scale);

// The 1-D resampling matrix M [out_length, in_length] (float64, CPU): y = M·x along one dim.
// Antialiased (kernel widened by 1/scale) when scale < 1. out_length < 0 means
// resized_length(in_length, scale).
torch::Tensor resizer_matrix(int64_t in_length, double scale, int64_t out_length = -1);

// Resizes the last two dims of x (H first, then W) by `scale`; differentiable, any device and
// floating dtype. The adjoint of this map is resize_adjoint.
torch::Tensor resize(const torch::Tensor& x, double scale);
// Aᵀ of resize for an input of in_height × in_width.
torch::Tensor resize_adjoint(const torch::Tensor& y, double scale, int64_t in_height,
                             int64_t in_width);

}  // namespace p2l::operators
