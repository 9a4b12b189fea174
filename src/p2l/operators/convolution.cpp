#include "p2l/operators/convolution.h"

#include <filesystem>

#include "p2l/error.h"
#include "p2l/io/image.h"
#include "p2l/io/safetensors.h"

namespace p2l::operators {
namespace {

// Adjoint of whole-sample reflection padding by p along `dim`: g has length n + 2p; the pad
// cells at a < p came from pixel p − a, those at a ≥ p + n from pixel 2(n−1) − (a − p).
torch::Tensor fold_reflection(const torch::Tensor& g, int64_t dim, int64_t p) {
  if (p == 0) return g;
  const int64_t n = g.size(dim) - 2 * p;
  auto centre = g.narrow(dim, p, n);
  auto low = g.narrow(dim, 0, p).flip({dim});       // lands on pixels 1 … p
  auto high = g.narrow(dim, p + n, p).flip({dim});  // lands on pixels n−1−p … n−2
  // constant_pad_nd lists (before, after) pairs starting from the last dim.
  std::vector<int64_t> pad_low(2 * (g.dim() - dim), 0), pad_high(2 * (g.dim() - dim), 0);
  const size_t at = pad_low.size() - 2;
  pad_low[at] = 1;
  pad_low[at + 1] = n - 1 - p;
  pad_high[at] = n - 1 - p;
  pad_high[at + 1] = 1;
  return centre + torch::constant_pad_nd(low, pad_low) + torch::constant_pad_nd(high, pad_high);
}

}  // namespace

Convolution::Convolution(torch::Tensor kernel, const std::string& who) : who_(who) {
  if (!kernel.defined() || kernel.dim() != 2)
    throw Error(who + ": the kernel must be a 2-D tensor");
  if (kernel.size(0) % 2 == 0 || kernel.size(1) % 2 == 0)
    throw Error(who + ": kernel size " + size_text(kernel.size(0), kernel.size(1)) +
                " must be odd (the blur is centred on a pixel)");
  kernel_ = kernel.detach().to(torch::kCPU, torch::kDouble).contiguous();
}

std::vector<int64_t> Convolution::output_shape(const std::vector<int64_t>& input_shape) const {
  if (input_shape.size() != 4) throw Error(who_ + ": expected a [B, C, H, W] shape");
  // Reflection padding can mirror each border only once (as torch's ReflectionPad2d).
  const int64_t ph = kernel_.size(0) / 2, pw = kernel_.size(1) / 2;
  if (input_shape[2] <= ph || input_shape[3] <= pw)
    throw Error(who_ + ": image size " + size_text(input_shape[2], input_shape[3]) +
                " is too small for the " + size_text(kernel_.size(0), kernel_.size(1)) +
                " kernel (needs at least " + size_text(ph + 1, pw + 1) + ")");
  return input_shape;
}

torch::Tensor Convolution::weight(const torch::Tensor& like) const {
  return weights_.get(0, like, [&] { return kernel_; });
}

torch::Tensor Convolution::forward(const torch::Tensor& x) const {
  check_image_tensor(x, who_);
  output_shape(x.sizes().vec());
  const int64_t ph = kernel_.size(0) / 2, pw = kernel_.size(1) / 2;
  const int64_t channels = x.size(1);
  auto w = weight(x).expand({channels, 1, kernel_.size(0), kernel_.size(1)});
  auto padded = torch::reflection_pad2d(x, {pw, pw, ph, ph});
  return torch::conv2d(padded, w, torch::Tensor(), torch::IntArrayRef{1, 1},
                       torch::IntArrayRef{0, 0}, torch::IntArrayRef{1, 1}, channels);
}

torch::Tensor Convolution::adjoint(const torch::Tensor& y) const {
  check_image_tensor(y, who_ + " adjoint");
  output_shape(y.sizes().vec());
  const int64_t kh = kernel_.size(0), kw = kernel_.size(1);
  const int64_t channels = y.size(1);
  // Transposed correlation = full correlation with the flipped kernel; written as a plain conv
  // because LibTorch's CPU conv_transpose2d is ~25× slower for large depthwise kernels.
  auto w = weight(y).flip({0, 1}).expand({channels, 1, kh, kw});
  auto zero_padded = torch::constant_pad_nd(y, {kw - 1, kw - 1, kh - 1, kh - 1});
  auto g = torch::conv2d(zero_padded, w, torch::Tensor(), torch::IntArrayRef{1, 1},
                         torch::IntArrayRef{0, 0}, torch::IntArrayRef{1, 1}, channels);
  return fold_reflection(fold_reflection(g, 2, kh / 2), 3, kw / 2);
}

torch::Tensor normalized_blur_kernel(const torch::Tensor& kernel, const std::string& who) {
  auto k = kernel.detach().to(torch::kCPU);
  while (k.dim() > 2 && k.size(0) == 1) k = k.squeeze(0);
  if (k.dim() != 2)
    throw Error(who + ": a blur kernel must be 2-D, got shape " + c10::str(kernel.sizes()));
  if (k.size(0) % 2 == 0 || k.size(1) % 2 == 0)
    throw Error(who + ": kernel size " + size_text(k.size(0), k.size(1)) +
                " must be odd (the blur is centred on a pixel)");
  auto k32 = k.to(torch::kFloat);
  if (!torch::isfinite(k32).all().item<bool>()) throw Error(who + ": kernel has NaN or Inf values");
  auto total = k32.sum();
  if (!(total.item<float>() > 0)) throw Error(who + ": kernel must have a positive sum");
  return (k32 / total).to(torch::kDouble);
}

torch::Tensor load_blur_kernel(const std::string& path) {
  const std::string who = "kernel file '" + path + "'";
  if (!std::filesystem::exists(path)) throw Error(who + ": no such file");
  const auto ext = std::filesystem::path(path).extension().string();
  if (ext == ".safetensors") {
    io::SafeTensorsFile file(path);
    std::string name = "kernel";
    if (!file.contains(name)) {
      if (file.tensors().size() != 1)
        throw Error(who + ": expected a tensor named 'kernel' or a single tensor");
      name = file.tensors().front().name;
    }
    return normalized_blur_kernel(file.load(name), who);
  }
  // 8-bit values as stored: DPS's kernels are 8-bit images divided by their sum.
  return normalized_blur_kernel(io::load_image_gray8(path), who);
}

}  // namespace p2l::operators
