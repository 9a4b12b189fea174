// The noise schedule of SD v1 and the DDIM sampler's pieces (SPEC §2), computed in float32 in
// the same order of operations as diffusers' DDIMScheduler so that results match it bit for bit.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace p2l::diffusion {

struct ScheduleConfig {
  int64_t num_train_timesteps = 1000;
  double beta_start = 0.00085;
  double beta_end = 0.012;
  std::string beta_schedule = "scaled_linear";  // or "linear"
  int64_t steps_offset = 1;
  // false for SD v1: the step after t = 1 uses ᾱ_0 instead of 1.
  bool set_alpha_to_one = false;

  static ScheduleConfig sd_v1() { return ScheduleConfig{}; }
  // diffusers' scheduler/scheduler_config.json; rejects options p2l does not implement.
  static ScheduleConfig from_json(const nlohmann::json& config);
  nlohmann::json to_json() const;
};

class NoiseSchedule {
 public:
  explicit NoiseSchedule(const ScheduleConfig& config = ScheduleConfig::sd_v1());

  const ScheduleConfig& config() const { return config_; }
  const torch::Tensor& betas() const { return betas_; }                    // [T] float32
  const torch::Tensor& alphas_cumprod() const { return alphas_cumprod_; }  // [T] float32
  // ᾱ_t; t < 0 is the "final" value (ᾱ_0, or 1 with set_alpha_to_one).
  float alpha_bar(int64_t t) const;

  // DDIM "leading" timesteps for n steps, descending: (arange(n)·(T/n)) + offset, reversed.
  std::vector<int64_t> timesteps(int64_t n) const;
  // The previous timestep of t in an n-step run: t − T/n.
  int64_t previous_timestep(int64_t t, int64_t n) const;

 private:
  ScheduleConfig config_;
  torch::Tensor betas_, alphas_cumprod_;
  std::vector<float> alpha_bar_;
};

// Tweedie estimate ẑ0 = (z_t − √(1−ᾱ_t)·ε) / √ᾱ_t.
torch::Tensor tweedie_estimate(const torch::Tensor& z_t, const torch::Tensor& eps, float alpha_bar_t);

struct DdimStep {
  torch::Tensor prev_sample;  // z_{t_prev}
  torch::Tensor pred_original_sample;  // ẑ0
};

// One DDIM step from t to t_prev (SPEC §2). With η > 0 the fresh noise ξ must be given
// (same shape as z_t); with η = 0 it is ignored.
DdimStep ddim_step(const torch::Tensor& z_t, const torch::Tensor& eps, float alpha_bar_t,
                   float alpha_bar_prev, double eta = 0.0, const torch::Tensor& noise = {});
// The deterministic part of a DDIM step given ẑ0 and ε (used by solvers that modify ẑ0), and
// σ_t of the step.
torch::Tensor ddim_from_estimate(const torch::Tensor& z0, const torch::Tensor& eps,
                                 float alpha_bar_t, float alpha_bar_prev, double eta,
                                 const torch::Tensor& noise = {});
float ddim_sigma(float alpha_bar_t, float alpha_bar_prev, double eta);

// N(0, 1) noise from a seed, drawn on the CPU then moved, for device-independent results.
torch::Tensor seeded_normal(at::IntArrayRef shape, uint64_t seed,
                            const torch::TensorOptions& options);

}  // namespace p2l::diffusion
