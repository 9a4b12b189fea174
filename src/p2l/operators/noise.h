// Measurement noise n in y = A(x) + n (SPEC §2, NOTES §6), drawn from p2l's PRNG (prng.h) so
// that a seed reproduces a measurement on any machine and device: the draws are made on the CPU
// in float64, in row-major order of the measurement, then cast to its dtype and device.
//
// Gaussian: y + σ·ε, ε ~ N(0, 1), σ on the [-1, 1] image scale (0.05 = 0.025 on [0, 1] ≈ 6.4
// grey levels), no clipping. σ = 0 adds nothing.
// Poisson with rate λ (DPS's PoissonNoise): photon counts k ~ Poisson(255·λ·u) with
// u = clamp((y + 1)/2, 0, 1), then y = clamp(2·k/(255·λ) − 1, −1, 1); λ = 1 means one expected
// photon per grey level at white; larger λ is less noise. The result keeps y's dtype (DPS
// returns float64).
#pragma once

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace p2l::operators {

enum class NoiseKind { kNone, kGaussian, kPoisson };

struct NoiseModel {
  NoiseKind kind = NoiseKind::kGaussian;
  double sigma = 0.05;  // Gaussian standard deviation on the [-1, 1] scale
  double rate = 1.0;    // Poisson λ

  static NoiseModel none() { return {NoiseKind::kNone, 0.0, 1.0}; }
  static NoiseModel gaussian(double sigma);  // throws p2l::Error unless σ ≥ 0
  static NoiseModel poisson(double rate);    // throws p2l::Error unless λ > 0

  // {"kind": "gaussian", "sigma": 0.05} / {"kind": "poisson", "rate": 1} / {"kind": "none"}.
  nlohmann::json to_json() const;
  static NoiseModel from_json(const nlohmann::json& j);
};

// A noisy copy of `clean`; the same (clean, noise, seed) gives the same bits every time.
torch::Tensor add_noise(const torch::Tensor& clean, const NoiseModel& noise, uint64_t seed);

}  // namespace p2l::operators
