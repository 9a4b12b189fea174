// One operator per sample of a batch (`p2l eval --batch`: jobs of one task whose random parts —
// motion kernels, masks, boxes — differ per image): A(x)[i] = A_i(x[i]). Operators whose
// parameters are all the same are better batched as one (stack_operators returns that one).
#pragma once

#include <memory>
#include <vector>

#include "p2l/operators/operator.h"

namespace p2l::operators {

class StackedOperator : public Operator {
 public:
  explicit StackedOperator(std::vector<std::shared_ptr<const Operator>> operators);

  std::string kind() const override { return operators_.front()->kind(); }
  torch::Tensor forward(const torch::Tensor& x) const override;
  torch::Tensor adjoint(const torch::Tensor& y) const override;
  std::vector<int64_t> output_shape(const std::vector<int64_t>& input_shape) const override;
  torch::Tensor solve_regularized(const torch::Tensor& b, double lambda, const torch::Tensor& x0,
                                  int64_t cg_iters, double tol) const override;
  nlohmann::json to_json() const override;

 private:
  // f applied to row i of `rows` with operator i, the results concatenated.
  template <typename F>
  torch::Tensor per_row(const torch::Tensor& rows, F&& f) const;
  std::vector<std::shared_ptr<const Operator>> operators_;
};

// The operator of a batch with one operator per sample: the first when all have the same
// parameters (to_json and tensors), else a StackedOperator. Throws p2l::Error for none or for
// operators of different kinds.
std::shared_ptr<const Operator> stack_operators(
    const std::vector<std::shared_ptr<const Operator>>& operators);

}  // namespace p2l::operators
