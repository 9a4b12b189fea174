#include "p2l/operators/denoising.h"

#include "p2l/error.h"

namespace p2l::operators {

torch::Tensor Denoising::forward(const torch::Tensor& x) const {
  check_image_tensor(x, kind());
  // A copy, so that a caller who modifies y in place never changes x.
  return x.clone();
}

std::vector<int64_t> Denoising::output_shape(const std::vector<int64_t>& input_shape) const {
  if (input_shape.size() != 4) throw Error("denoising: expected a [B, C, H, W] shape");
  return input_shape;
}

torch::Tensor Denoising::solve_regularized(const torch::Tensor& b, double lambda,
                                           const torch::Tensor&, int64_t, double) const {
  if (!(lambda > 0)) throw Error("denoising: solve_regularized needs lambda > 0");
  check_image_tensor(b, "denoising solve_regularized");
  return b / (1 + lambda);
}

}  // namespace p2l::operators
