// Gaussian deblurring's forward model: the convolution of convolution.h with the kernel DPS
// builds (NOTES §3): scipy.ndimage.gaussian_filter of a K×K delta with σ, truncate 4,
// 'reflect' boundary; i.e. the outer product of a 1-D Gaussian of radius int(4σ + 0.5)
// normalised to sum 1, with any tail beyond the K×K square folded back by reflection.
#pragma once

#include "p2l/operators/convolution.h"

namespace p2l::operators {

// The [K, K] float64 kernel; K odd, σ > 0.
torch::Tensor gaussian_kernel(int64_t size, double sigma);

class GaussianBlur : public Convolution {
 public:
  GaussianBlur(int64_t kernel_size, double sigma);

  int64_t kernel_size() const { return kernel_size_; }
  double sigma() const { return sigma_; }

  std::string kind() const override { return "gaussian_blur"; }
  nlohmann::json to_json() const override;
  // Uses the stored kernel when the JSON names one (checked against kernel_size), otherwise
  // rebuilds it from kernel_size and sigma.
  static std::unique_ptr<GaussianBlur> from_json(const nlohmann::json& j,
                                                 const NamedTensors& tensors);

 private:
  GaussianBlur(int64_t kernel_size, double sigma, torch::Tensor kernel);

  int64_t kernel_size_;
  double sigma_;
};

}  // namespace p2l::operators
