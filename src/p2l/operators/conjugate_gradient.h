// Conjugate gradient for symmetric positive definite systems M x = b given as a function,
// solved independently for every batch element (dim 0) so that one hard image in a batch never
// changes the others' step sizes.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>

namespace p2l::operators {

struct CgResult {
  torch::Tensor x;
  int64_t iterations = 0;
  // max over the batch of ‖b − M x‖ / ‖b‖ by the CG recursion (0 where b = 0).
  double relative_residual = 0.0;
};

// Stops after max_iters or when every batch element has relative residual ≤ tol. x0 undefined
// means zeros. Built from differentiable ops, so gradients flow to b through the iterations.
CgResult conjugate_gradient(const std::function<torch::Tensor(const torch::Tensor&)>& apply,
                            const torch::Tensor& b, const torch::Tensor& x0, int64_t max_iters,
                            double tol);

}  // namespace p2l::operators
