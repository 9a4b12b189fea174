// Denoising: A = I. solve_regularized is exact: x = b / (1 + λ).
#pragma once

#include "p2l/operators/operator.h"

namespace p2l::operators {

class Denoising : public Operator {
 public:
  std::string kind() const override { return "denoising"; }
  torch::Tensor forward(const torch::Tensor& x) const override;
  torch::Tensor adjoint(const torch::Tensor& y) const override { return forward(y); }
  std::vector<int64_t> output_shape(const std::vector<int64_t>& input_shape) const override;
  torch::Tensor solve_regularized(const torch::Tensor& b, double lambda,
                                  const torch::Tensor& x0 = {}, int64_t cg_iters = 50,
                                  double tol = 1e-5) const override;
  nlohmann::json to_json() const override { return {{"kind", kind()}}; }
};

}  // namespace p2l::operators
