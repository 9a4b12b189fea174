#include "p2l/operators/gaussian_blur.h"

#include <cmath>
#include <vector>

#include "p2l/error.h"
#include "p2l/io/json_file.h"

namespace p2l::operators {
namespace {

void check_gaussian_parameters(int64_t size, double sigma) {
  if (size < 1 || size % 2 == 0)
    throw Error("Gaussian blur: kernel size must be odd and positive, got " + std::to_string(size));
  if (!(sigma > 0) || !std::isfinite(sigma))
    throw Error("Gaussian blur: sigma must be positive, got " + c10::str(sigma));
}

// Half-sample symmetric index (scipy's 'reflect'): … 1 0 | 0 1 … n−1 | n−1 …
int64_t reflect(int64_t i, int64_t n) {
  int64_t r = i % (2 * n);
  if (r < 0) r += 2 * n;
  return r >= n ? 2 * n - 1 - r : r;
}

}  // namespace

torch::Tensor gaussian_kernel(int64_t size, double sigma) {
  check_gaussian_parameters(size, sigma);
  const int64_t radius = static_cast<int64_t>(4.0 * sigma + 0.5);  // scipy: truncate = 4
  std::vector<double> taps(2 * radius + 1);
  double total = 0;
  for (int64_t t = -radius; t <= radius; ++t) {
    taps[t + radius] = std::exp(-0.5 / (sigma * sigma) * static_cast<double>(t * t));
    total += taps[t + radius];
  }
  // 1-D filter of a delta at the centre; taps that reach past the edge fold back (scipy
  // 'reflect'), which only matters when the radius exceeds size / 2.
  const int64_t centre = size / 2;
  auto profile = torch::zeros({size}, torch::kDouble);
  auto g = profile.accessor<double, 1>();
  for (int64_t i = 0; i < size; ++i)
    for (int64_t t = -radius; t <= radius; ++t)
      if (reflect(i + t, size) == centre) g[i] += taps[t + radius] / total;
  return torch::outer(profile, profile);
}

GaussianBlur::GaussianBlur(int64_t kernel_size, double sigma)
    : GaussianBlur(kernel_size, sigma, gaussian_kernel(kernel_size, sigma)) {}

GaussianBlur::GaussianBlur(int64_t kernel_size, double sigma, torch::Tensor kernel)
    : Convolution(std::move(kernel), "Gaussian blur"), kernel_size_(kernel_size), sigma_(sigma) {}

nlohmann::json GaussianBlur::to_json() const {
  return {{"kind", kind()},
          {"kernel_size", kernel_size_},
          {"sigma", sigma_},
          {"kernel_tensor", "kernel"}};
}

std::unique_ptr<GaussianBlur> GaussianBlur::from_json(const nlohmann::json& j,
                                                      const NamedTensors& tensors) {
  const auto size = io::json_to_int(j.at("kernel_size"), "Gaussian blur", "kernel_size");
  const auto sigma = j.at("sigma").get<double>();
  check_gaussian_parameters(size, sigma);
  if (j.contains("kernel_tensor")) {
    const auto name = j["kernel_tensor"].get<std::string>();
    const auto found = tensors.find(name);
    if (found == tensors.end())
      throw Error("Gaussian blur: kernel tensor '" + name + "' is missing");
    auto kernel = found->second;
    if (kernel.dim() != 2 || kernel.size(0) != size || kernel.size(1) != size)
      throw Error("Gaussian blur: stored kernel has shape " + c10::str(kernel.sizes()) +
                  " but kernel_size is " + std::to_string(size));
    return std::unique_ptr<GaussianBlur>(new GaussianBlur(size, sigma, kernel));
  }
  return std::make_unique<GaussianBlur>(size, sigma);
}

}  // namespace p2l::operators
