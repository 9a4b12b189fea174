#include "p2l/operators/noise.h"

#include <algorithm>
#include <cmath>

#include "p2l/error.h"
#include "p2l/operators/prng.h"

namespace p2l::operators {

NoiseModel NoiseModel::gaussian(double sigma) {
  if (!(sigma >= 0) || !std::isfinite(sigma))
    throw Error("noise: the Gaussian sigma must be ≥ 0, got " + c10::str(sigma));
  return {NoiseKind::kGaussian, sigma, 1.0};
}

NoiseModel NoiseModel::poisson(double rate) {
  if (!(rate > 0) || !std::isfinite(rate))
    throw Error("noise: the Poisson rate must be > 0, got " + c10::str(rate));
  return {NoiseKind::kPoisson, 0.0, rate};
}

nlohmann::json NoiseModel::to_json() const {
  switch (kind) {
    case NoiseKind::kNone:
      return {{"kind", "none"}};
    case NoiseKind::kGaussian:
      return {{"kind", "gaussian"}, {"sigma", sigma}};
    case NoiseKind::kPoisson:
      return {{"kind", "poisson"}, {"rate", rate}};
  }
  return {};
}

NoiseModel NoiseModel::from_json(const nlohmann::json& j) {
  const auto kind = j.at("kind").get<std::string>();
  if (kind == "none") return none();
  if (kind == "gaussian") return gaussian(j.at("sigma").get<double>());
  if (kind == "poisson") return poisson(j.at("rate").get<double>());
  throw Error("noise: unknown kind '" + kind + "' (use gaussian, poisson or none)");
}

torch::Tensor add_noise(const torch::Tensor& clean, const NoiseModel& noise, uint64_t seed) {
  if (noise.kind == NoiseKind::kNone || (noise.kind == NoiseKind::kGaussian && noise.sigma == 0))
    return clean.clone();
  SplitMix64 rng(derive_seed(seed, "noise"));
  if (noise.kind == NoiseKind::kGaussian) {
    auto eps = torch::empty(clean.sizes(), torch::kDouble);
    auto* e = eps.data_ptr<double>();
    for (int64_t i = 0; i < eps.numel(); ++i) e[i] = noise.sigma * rng.normal();
    return clean + eps.to(clean.device(), clean.scalar_type());
  }
  auto values = clean.detach().to(torch::kCPU, torch::kDouble).contiguous();
  auto* v = values.data_ptr<double>();
  const double photons = 255.0 * noise.rate;  // expected count at white
  for (int64_t i = 0; i < values.numel(); ++i) {
    const double unit = std::clamp((v[i] + 1) / 2, 0.0, 1.0);
    const double counts = static_cast<double>(rng.poisson(photons * unit));
    v[i] = std::clamp(2 * counts / photons - 1, -1.0, 1.0);
  }
  return values.to(clean.device(), clean.scalar_type());
}

}  // namespace p2l::operators
