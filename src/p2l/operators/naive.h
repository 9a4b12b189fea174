// The naive reconstruction a solver must beat: the measurement up-sampled (bicubic) for
// super-resolution, the measurement itself for blurs and denoising, and the measured pixels with
// the missing ones filled by the mean of the measured ones for inpainting.
#pragma once

#include <torch/torch.h>

#include "p2l/operators/operator.h"

namespace p2l::operators {

torch::Tensor naive_reconstruction(const Operator& op, const torch::Tensor& y, int64_t height,
                                   int64_t width);

}  // namespace p2l::operators
