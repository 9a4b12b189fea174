#include "p2l/metrics/image_quality.h"

#include <cmath>
#include <limits>

#include "p2l/error.h"

namespace p2l::metrics {
namespace {

torch::Tensor unit_range(const torch::Tensor& x, const torch::Tensor& other, const char* who) {
  if (x.sizes() != other.sizes())
    throw Error(std::string(who) + ": images differ in shape: " + c10::str(x.sizes()) + " vs " +
                c10::str(other.sizes()));
  if (x.dim() != 3 && !(x.dim() == 4 && x.size(0) == 1))
    throw Error(std::string(who) + ": expected a [1, C, H, W] or [C, H, W] image, got " +
                c10::str(x.sizes()));
  auto y = x.detach().to(torch::kCPU, torch::kDouble);
  if (y.dim() == 3) y = y.unsqueeze(0);
  return (y / 2 + 0.5).clamp(0, 1);
}

torch::Tensor gaussian_window(int64_t size, double sigma) {
  auto r = torch::arange(size, torch::kDouble) - (size - 1) / 2.0;
  auto g = torch::exp(-r.pow(2) / (2 * sigma * sigma));
  g = g / g.sum();
  return g.outer(g);
}

}  // namespace

double psnr(const torch::Tensor& a, const torch::Tensor& b) {
  auto x = unit_range(a, b, "psnr"), y = unit_range(b, a, "psnr");
  const double mse = (x - y).pow(2).mean().item<double>();
  if (mse == 0) return std::numeric_limits<double>::infinity();
  return -10 * std::log10(mse);
}

double ssim(const torch::Tensor& a, const torch::Tensor& b) {
  auto x = unit_range(a, b, "ssim"), y = unit_range(b, a, "ssim");
  const int64_t channels = x.size(1);
  const int64_t size = std::min<int64_t>({11, x.size(2), x.size(3)});
  auto w = gaussian_window(size, 1.5).view({1, 1, size, size}).repeat({channels, 1, 1, 1});
  auto filter = [&](const torch::Tensor& t) {
    namespace F = torch::nn::functional;
    return F::conv2d(t, w, F::Conv2dFuncOptions().groups(channels));
  };
  const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
  auto mean_x = filter(x), mean_y = filter(y);
  auto var_x = filter(x * x) - mean_x * mean_x, var_y = filter(y * y) - mean_y * mean_y;
  auto cov = filter(x * y) - mean_x * mean_y;
  auto map = ((2 * mean_x * mean_y + c1) * (2 * cov + c2)) /
             ((mean_x * mean_x + mean_y * mean_y + c1) * (var_x + var_y + c2));
  return map.mean().item<double>();
}

}  // namespace p2l::metrics
