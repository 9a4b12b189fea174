// Blur by a fixed kernel, the convolution path of DPS's Gaussian and motion blur (NOTES §3):
// whole-sample reflection padding by K//2 (edge pixel not repeated), then a depthwise
// cross-correlation (no kernel flip) with the same kernel in every channel, so the output has
// the input's size. The adjoint is the full correlation with the flipped kernel followed by
// folding the padding back onto the pixels it was copied from.
#pragma once

#include "p2l/operators/operator.h"

namespace p2l::operators {

class Convolution : public Operator {
 public:
  // [Kh, Kw] float64 CPU kernel as applied (correlation orientation).
  const torch::Tensor& kernel() const { return kernel_; }

  torch::Tensor forward(const torch::Tensor& x) const override;
  torch::Tensor adjoint(const torch::Tensor& y) const override;
  std::vector<int64_t> output_shape(const std::vector<int64_t>& input_shape) const override;
  NamedTensors tensors() const override { return {{"kernel", kernel_}}; }

 protected:
  // Checks that the kernel is 2-D with odd sizes; `who` names the operator in errors.
  Convolution(torch::Tensor kernel, const std::string& who);

 private:
  // The kernel as a depthwise conv weight [C, 1, Kh, Kw] in like's dtype and device.
  torch::Tensor weight(const torch::Tensor& like) const;

  torch::Tensor kernel_;
  std::string who_;
  ConstantCache weights_;
};

// Reads a blur kernel from a grey PNG (8-bit values; colour is reduced to luma) or a safetensors
// file (the tensor "kernel", or its only tensor; [K, K], [1, K, K] or [1, 1, K, K]), checks that
// its sizes are odd and its sum positive, and normalises it to sum 1 in float32 as DPS does
// (kernel = float32(L) / Σ float32(L)), returning float64.
torch::Tensor load_blur_kernel(const std::string& path);

// Checks a user kernel and normalises it to sum 1 (in float32, as DPS does); float64 result.
torch::Tensor normalized_blur_kernel(const torch::Tensor& kernel, const std::string& who);

}  // namespace p2l::operators
