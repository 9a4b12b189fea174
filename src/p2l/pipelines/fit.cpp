#include "p2l/pipelines/fit.h"

namespace p2l::pipelines {

double autoencoded_residual(model::StableDiffusion& model,
                            const operators::Measurement& measurement, const torch::Tensor& clean) {
  torch::NoGradGuard no_grad;
  const auto x = clean.to(model.device(), model.arithmetic_dtype());
  // Clamped as a restored image is before its residual is taken (restoration.cpp).
  const auto reconstruction = model.decode(model.encode(x))
                                  .clamp(-1, 1)
                                  .to(torch::kCPU, torch::kFloat);
  const auto y = measurement.y.to(torch::kCPU, torch::kFloat);
  return (y - measurement.op->forward(reconstruction)).norm().item<double>();
}

std::optional<double> fit_ratio(double residual, double reference) {
  if (!(reference > 0)) return std::nullopt;
  return residual / reference;
}

}  // namespace p2l::pipelines
