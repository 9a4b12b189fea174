#include "p2l/operators/operator.h"

#include "p2l/error.h"
#include "p2l/operators/conjugate_gradient.h"

namespace p2l::operators {

torch::Tensor Operator::solve_regularized(const torch::Tensor& b, double lambda,
                                          const torch::Tensor& x0, int64_t cg_iters,
                                          double tol) const {
  if (!(lambda > 0)) throw Error(kind() + ": solve_regularized needs lambda > 0");
  check_image_tensor(b, kind() + " solve_regularized");
  auto normal = [&](const torch::Tensor& v) { return adjoint(forward(v)) + lambda * v; };
  return conjugate_gradient(normal, b, x0, cg_iters, tol).x;
}

void check_image_tensor(const torch::Tensor& x, const std::string& who) {
  if (!x.defined()) throw Error(who + ": undefined tensor");
  if (x.dim() != 4)
    throw Error(who + ": expected a [B, C, H, W] tensor, got " + c10::str(x.sizes()));
  if (!x.is_floating_point())
    throw Error(who + ": expected a floating-point tensor, got " + c10::str(x.scalar_type()));
}

std::string size_text(int64_t height, int64_t width) {
  return std::to_string(height) + "×" + std::to_string(width);
}

torch::Tensor ConstantCache::get(int64_t key, const torch::Tensor& like,
                                 const std::function<torch::Tensor()>& make) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto cpu_key = std::make_tuple(key, static_cast<int>(torch::kDouble), std::string("cpu"));
  auto master = entries_.find(cpu_key);
  if (master == entries_.end())
    master = entries_.emplace(cpu_key, make().to(torch::kCPU, torch::kDouble).contiguous()).first;
  const auto want = std::make_tuple(key, static_cast<int>(like.scalar_type()), like.device().str());
  auto found = entries_.find(want);
  if (found == entries_.end())
    found = entries_.emplace(want, master->second.to(like.device(), like.scalar_type())).first;
  return found->second;
}

}  // namespace p2l::operators
