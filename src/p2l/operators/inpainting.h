// Inpainting's forward model: A x = m ⊙ x with a per-pixel mask m [H, W] shared by all channels
// (1 = observed, 0 = missing), as DPS's InpaintingOperator. Self-adjoint; (AᵀA + λI) is
// diagonal, so solve_regularized is exact: x = b / (m² + λ). This class takes any mask (a user's
// PNG or tensor); box_inpainting.h and random_inpainting.h generate the standard ones.
#pragma once

#include "p2l/operators/operator.h"

namespace p2l::operators {

class Inpainting : public Operator {
 public:
  // mask: [H, W] (or [1, H, W], [1, 1, H, W]); `source` (a file path) is recorded in the JSON.
  explicit Inpainting(const torch::Tensor& mask, std::string source = "");
  // Reads a mask from an image (grey level ≥ 128 = observed, transparent counts as white) or a
  // safetensors file (tensor "mask" or its only tensor; values used as they are).
  static std::unique_ptr<Inpainting> from_file(const std::string& path);

  // [H, W] float64 CPU.
  const torch::Tensor& mask() const { return mask_; }
  int64_t height() const { return mask_.size(0); }
  int64_t width() const { return mask_.size(1); }

  std::string kind() const override { return "inpainting"; }
  torch::Tensor forward(const torch::Tensor& x) const override;
  torch::Tensor adjoint(const torch::Tensor& y) const override { return forward(y); }
  std::vector<int64_t> output_shape(const std::vector<int64_t>& input_shape) const override;
  torch::Tensor solve_regularized(const torch::Tensor& b, double lambda,
                                  const torch::Tensor& x0 = {}, int64_t cg_iters = 50,
                                  double tol = 1e-5) const override;
  nlohmann::json to_json() const override;
  NamedTensors tensors() const override { return {{"mask", mask_}}; }
  static std::unique_ptr<Inpainting> from_json(const nlohmann::json& j,
                                               const NamedTensors& tensors);

 protected:
  // The mask [1, 1, H, W] in like's dtype and device.
  torch::Tensor mask_like(const torch::Tensor& like) const;
  // The stored mask named by j["mask_tensor"], checked against j's height and width if given.
  static torch::Tensor mask_from_json(const nlohmann::json& j, const NamedTensors& tensors,
                                      const std::string& who);
  // Size check shared by the mask-based operators: throws unless shape is [B, C, H, W] of this
  // mask's size.
  void check_size(const std::vector<int64_t>& shape, const std::string& who) const;

 private:
  torch::Tensor mask_;
  std::string source_;
  ConstantCache masks_;
};

}  // namespace p2l::operators
