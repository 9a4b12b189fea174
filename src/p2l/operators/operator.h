// The forward models of image restoration (SPEC §3): y = A(x) + n. Every operator is linear,
// works on batches [B, C, H, W] of any floating dtype on any device, supports autograd through
// both A and Aᵀ (both are built from differentiable torch ops), and serialises itself so that a
// measurement file fully determines it.
#pragma once

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace p2l::operators {

// Kernels and masks travel in safetensors files under these names.
using NamedTensors = std::map<std::string, torch::Tensor>;

class Operator {
 public:
  virtual ~Operator() = default;

  // The "kind" field of to_json(): "super_resolution", "gaussian_blur", ...
  virtual std::string kind() const = 0;

  // A(x): [B, C, H, W] → output_shape([B, C, H, W]).
  virtual torch::Tensor forward(const torch::Tensor& x) const = 0;
  // Aᵀ(y): the exact adjoint, ⟨A x, y⟩ = ⟨x, Aᵀ y⟩.
  virtual torch::Tensor adjoint(const torch::Tensor& y) const = 0;
  // Shape of A(x) for an input of this shape; throws p2l::Error if the operator cannot take it.
  virtual std::vector<int64_t> output_shape(const std::vector<int64_t>& input_shape) const = 0;

  // Solves (AᵀA + λI) x = b (the proximal step of P2L, SPEC §4.3). λ > 0. The default runs
  // conjugate gradient from x0 (zeros if undefined) for at most cg_iters iterations or until
  // ‖b − (AᵀA + λI)x‖ ≤ tol·‖b‖ per batch element; mask operators override it with the exact
  // closed form. Differentiable with respect to b (CG is unrolled).
  virtual torch::Tensor solve_regularized(const torch::Tensor& b, double lambda,
                                          const torch::Tensor& x0 = {}, int64_t cg_iters = 50,
                                          double tol = 1e-5) const;

  // Kind and parameters. Tensors (kernels, masks) are named in the JSON and returned by
  // tensors(); operator_from_json (factory.h) takes both back.
  virtual nlohmann::json to_json() const = 0;
  virtual NamedTensors tensors() const { return {}; }
};

// Throws p2l::Error unless x is a floating [B, C, H, W] tensor; `who` names the operator.
void check_image_tensor(const torch::Tensor& x, const std::string& who);
// "H×W", as error messages give sizes.
std::string size_text(int64_t height, int64_t width);

// A constant (kernel, mask, resampling matrix) held once in float64 on the CPU and handed out
// converted to the dtype and device of the tensor it is applied to, converted once per
// (key, dtype, device). Thread-safe; copying yields an empty cache.
class ConstantCache {
 public:
  ConstantCache() = default;
  ConstantCache(const ConstantCache&) {}
  ConstantCache& operator=(const ConstantCache&) { return *this; }

  // make() builds the float64 CPU master for `key` on first use.
  torch::Tensor get(int64_t key, const torch::Tensor& like,
                    const std::function<torch::Tensor()>& make) const;

 private:
  mutable std::mutex mutex_;
  mutable std::map<std::tuple<int64_t, int, std::string>, torch::Tensor> entries_;
};

}  // namespace p2l::operators
