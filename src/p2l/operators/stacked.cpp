#include "p2l/operators/stacked.h"

#include "p2l/error.h"

namespace p2l::operators {

StackedOperator::StackedOperator(std::vector<std::shared_ptr<const Operator>> operators)
    : operators_(std::move(operators)) {
  if (operators_.empty()) throw Error("stacked operator: no operators");
}

template <typename F>
torch::Tensor StackedOperator::per_row(const torch::Tensor& rows, F&& f) const {
  const auto n = static_cast<int64_t>(operators_.size());
  if (rows.dim() == 0 || rows.size(0) != n)
    throw Error("stacked operator: a batch of " + std::to_string(rows.dim() ? rows.size(0) : 0) +
                " for " + std::to_string(n) + " operators");
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(f(*operators_[i], i, rows.slice(0, i, i + 1)));
  return torch::cat(out, 0);
}

torch::Tensor StackedOperator::forward(const torch::Tensor& x) const {
  return per_row(x, [](const Operator& op, int64_t, const torch::Tensor& r) {
    return op.forward(r);
  });
}

torch::Tensor StackedOperator::adjoint(const torch::Tensor& y) const {
  return per_row(y, [](const Operator& op, int64_t, const torch::Tensor& r) {
    return op.adjoint(r);
  });
}

std::vector<int64_t> StackedOperator::output_shape(const std::vector<int64_t>& input_shape) const {
  if (input_shape.empty() || input_shape[0] != static_cast<int64_t>(operators_.size()))
    throw Error("stacked operator: an input batch other than its " +
                std::to_string(operators_.size()) + " operators");
  auto one = input_shape;
  one[0] = 1;
  auto shape = operators_.front()->output_shape(one);
  shape[0] = input_shape[0];
  return shape;
}

torch::Tensor StackedOperator::solve_regularized(const torch::Tensor& b, double lambda,
                                                 const torch::Tensor& x0, int64_t cg_iters,
                                                 double tol) const {
  return per_row(b, [&](const Operator& op, int64_t i, const torch::Tensor& r) {
    return op.solve_regularized(r, lambda, x0.defined() ? x0.slice(0, i, i + 1) : x0, cg_iters,
                                tol);
  });
}

nlohmann::json StackedOperator::to_json() const {
  auto list = nlohmann::json::array();
  for (const auto& op : operators_) list.push_back(op->to_json());
  return {{"kind", kind()}, {"stacked", list}};
}

std::shared_ptr<const Operator> stack_operators(
    const std::vector<std::shared_ptr<const Operator>>& operators) {
  if (operators.empty()) throw Error("stacked operator: no operators");
  bool same = true;
  for (const auto& op : operators) {
    if (op->kind() != operators.front()->kind())
      throw Error("stacked operator: " + op->kind() + " beside " + operators.front()->kind());
    if (op->to_json() != operators.front()->to_json()) {
      same = false;
      continue;
    }
    const auto a = op->tensors(), b = operators.front()->tensors();
    if (a.size() != b.size()) {
      same = false;
      continue;
    }
    for (const auto& [name, t] : a) {
      const auto it = b.find(name);
      if (it == b.end() || !torch::equal(t, it->second)) same = false;
    }
  }
  if (same) return operators.front();
  return std::make_shared<StackedOperator>(operators);
}

}  // namespace p2l::operators
