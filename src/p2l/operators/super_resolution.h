// Super-resolution ×f: A = antialiased bicubic down-sampling by 1/f (resizer.h), the operator of
// DPS/PSLD. Unlike their nearest-neighbour "transpose", adjoint() is the exact Aᵀ. Takes any
// H, W divisible by f; the resampling matrices are built per size and cached.
#pragma once

#include "p2l/operators/operator.h"

namespace p2l::operators {

class SuperResolution : public Operator {
 public:
  explicit SuperResolution(int64_t factor);

  int64_t factor() const { return factor_; }

  std::string kind() const override { return "super_resolution"; }
  torch::Tensor forward(const torch::Tensor& x) const override;
  torch::Tensor adjoint(const torch::Tensor& y) const override;
  std::vector<int64_t> output_shape(const std::vector<int64_t>& input_shape) const override;
  nlohmann::json to_json() const override;
  static std::unique_ptr<SuperResolution> from_json(const nlohmann::json& j);

 private:
  // M [n/f, n] for input length n, in like's dtype and device.
  torch::Tensor matrix(int64_t in_length, const torch::Tensor& like) const;

  int64_t factor_;
  ConstantCache matrices_;
};

}  // namespace p2l::operators
