#include "p2l/operators/conjugate_gradient.h"

#include <algorithm>
#include <vector>

#include "p2l/error.h"

namespace p2l::operators {
namespace {

// Per-batch-element inner product, shaped [B, 1, 1, ...] to broadcast against b.
torch::Tensor batch_dot(const torch::Tensor& a, const torch::Tensor& b) {
  std::vector<int64_t> shape(a.dim(), 1);
  shape[0] = a.size(0);
  return (a * b).flatten(1).sum(1).view(shape);
}

// num / den where den > 0, else 0, without NaNs in the unused branch (they would poison grads).
torch::Tensor safe_ratio(const torch::Tensor& num, const torch::Tensor& den) {
  auto positive = den > 0;
  return torch::where(positive, num / torch::where(positive, den, torch::ones_like(den)),
                      torch::zeros_like(num));
}

double max_relative(const torch::Tensor& rs, const torch::Tensor& bb) {
  auto rel = safe_ratio(rs.detach(), bb.detach()).sqrt();
  return rel.max().item<double>();
}

}  // namespace

CgResult conjugate_gradient(const std::function<torch::Tensor(const torch::Tensor&)>& apply,
                            const torch::Tensor& b, const torch::Tensor& x0, int64_t max_iters,
                            double tol) {
  if (b.dim() < 1 || b.numel() == 0) throw Error("conjugate gradient: empty right-hand side");
  if (x0.defined() && x0.sizes() != b.sizes())
    throw Error("conjugate gradient: x0 has shape " + c10::str(x0.sizes()) + " but b has " +
                c10::str(b.sizes()));
  CgResult result;
  auto x = x0.defined() ? x0 : torch::zeros_like(b);
  auto r = b - apply(x);
  auto p = r;
  auto rs = batch_dot(r, r);
  const auto bb = batch_dot(b, b);
  result.relative_residual = max_relative(rs, bb);
  while (result.iterations < max_iters && result.relative_residual > tol) {
    auto mp = apply(p);
    auto alpha = safe_ratio(rs, batch_dot(p, mp));
    x = x + alpha * p;
    r = r - alpha * mp;
    auto rs_next = batch_dot(r, r);
    p = r + safe_ratio(rs_next, rs) * p;
    rs = rs_next;
    ++result.iterations;
    result.relative_residual = max_relative(rs, bb);
  }
  result.x = x;
  return result;
}

}  // namespace p2l::operators
