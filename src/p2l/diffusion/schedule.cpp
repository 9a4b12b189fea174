#include "p2l/diffusion/schedule.h"

#include <nlohmann/json.hpp>

#include <cmath>

#include "p2l/error.h"
#include "p2l/io/json_file.h"

namespace p2l::diffusion {

namespace {

constexpr char kScheduleConfig[] = "scheduler config";

ScheduleConfig schedule_config_from_json(const nlohmann::json& j) {
  ScheduleConfig c;
  c.num_train_timesteps = io::json_int(j, "num_train_timesteps", c.num_train_timesteps, kScheduleConfig);
  c.beta_start = j.value("beta_start", c.beta_start);
  c.beta_end = j.value("beta_end", c.beta_end);
  c.beta_schedule = j.value("beta_schedule", c.beta_schedule);
  c.steps_offset = io::json_int(j, "steps_offset", c.steps_offset, kScheduleConfig);
  c.set_alpha_to_one = j.value("set_alpha_to_one", c.set_alpha_to_one);
  const auto fail = [](const std::string& m) { throw Error("scheduler config: " + m); };
  if (c.beta_schedule != "scaled_linear" && c.beta_schedule != "linear")
    fail("unsupported beta_schedule '" + c.beta_schedule + "'");
  if (j.contains("prediction_type") && j["prediction_type"] != "epsilon")
    fail("only epsilon prediction is supported");
  if (j.contains("timestep_spacing") && j["timestep_spacing"] != "leading")
    fail("only 'leading' timestep spacing is supported");
  if (j.contains("trained_betas") && !j["trained_betas"].is_null()) fail("trained_betas unsupported");
  if (j.value("rescale_betas_zero_snr", false)) fail("rescale_betas_zero_snr is unsupported");
  if (c.num_train_timesteps <= 0 || !(c.beta_start > 0) || !(c.beta_end > c.beta_start))
    fail("invalid schedule parameters");
  return c;
}

}  // namespace

ScheduleConfig ScheduleConfig::from_json(const nlohmann::json& j) {
  // A value of the wrong type is nlohmann's type_error; it is a defect of the file like any other.
  try {
    return schedule_config_from_json(j);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string(kScheduleConfig) + ": " + e.what());
  }
}

nlohmann::json ScheduleConfig::to_json() const {
  return {{"_class_name", "DDIMScheduler"}, {"num_train_timesteps", num_train_timesteps},
          {"beta_start", beta_start},       {"beta_end", beta_end},
          {"beta_schedule", beta_schedule}, {"steps_offset", steps_offset},
          {"set_alpha_to_one", set_alpha_to_one}, {"prediction_type", "epsilon"},
          {"timestep_spacing", "leading"},  {"clip_sample", false}};
}

NoiseSchedule::NoiseSchedule(const ScheduleConfig& config) : config_(config) {
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  const int64_t T = config_.num_train_timesteps;
  if (config_.beta_schedule == "scaled_linear") {
    // SD v1: linspace in √β, then squared; float32 like diffusers.
    betas_ = torch::linspace(std::sqrt(config_.beta_start), std::sqrt(config_.beta_end), T, f32)
                 .pow(2);
  } else {
    betas_ = torch::linspace(config_.beta_start, config_.beta_end, T, f32);
  }
  alphas_cumprod_ = torch::cumprod(1.0 - betas_, 0);
  auto acc = alphas_cumprod_.accessor<float, 1>();
  alpha_bar_.assign(acc.data(), acc.data() + T);
}

float NoiseSchedule::alpha_bar(int64_t t) const {
  if (t < 0) return config_.set_alpha_to_one ? 1.0f : alpha_bar_.front();
  if (t >= static_cast<int64_t>(alpha_bar_.size()))
    throw Error("timestep " + std::to_string(t) + " is outside the schedule");
  return alpha_bar_[static_cast<size_t>(t)];
}

std::vector<int64_t> NoiseSchedule::timesteps(int64_t n) const {
  const int64_t T = config_.num_train_timesteps;
  if (n <= 0 || n > T)
    throw Error("number of steps must be in 1.." + std::to_string(T) + ", got " +
                std::to_string(n));
  const int64_t ratio = T / n;
  // With a step offset (SD's is 1) the first timestep of n = T steps, T, does not exist; say so
  // before a run starts, with the largest count that fits (999 for SD).
  if ((n - 1) * ratio + config_.steps_offset >= T) {
    int64_t most = n - 1;
    while (most > 1 && (most - 1) * (T / most) + config_.steps_offset >= T) --most;
    throw Error("--steps " + std::to_string(n) + ": this schedule (" + std::to_string(T) +
                " training steps, steps_offset " + std::to_string(config_.steps_offset) +
                ") has room for at most " + std::to_string(most) + " DDIM steps");
  }
  std::vector<int64_t> ts;
  for (int64_t i = n - 1; i >= 0; --i) ts.push_back(i * ratio + config_.steps_offset);
  return ts;
}

int64_t NoiseSchedule::previous_timestep(int64_t t, int64_t n) const {
  return t - config_.num_train_timesteps / n;
}

torch::Tensor tweedie_estimate(const torch::Tensor& z_t, const torch::Tensor& eps,
                               float alpha_bar_t) {
  const float beta_t = 1.0f - alpha_bar_t;
  return (z_t - std::sqrt(beta_t) * eps) / std::sqrt(alpha_bar_t);
}

float ddim_sigma(float alpha_bar_t, float alpha_bar_prev, double eta) {
  if (eta == 0.0) return 0.0f;
  const float beta_t = 1.0f - alpha_bar_t, beta_prev = 1.0f - alpha_bar_prev;
  const float variance = (beta_prev / beta_t) * (1.0f - alpha_bar_t / alpha_bar_prev);
  return static_cast<float>(eta) * std::sqrt(variance);
}

torch::Tensor ddim_from_estimate(const torch::Tensor& z0, const torch::Tensor& eps,
                                 float alpha_bar_t, float alpha_bar_prev, double eta,
                                 const torch::Tensor& noise) {
  const float sigma = ddim_sigma(alpha_bar_t, alpha_bar_prev, eta);
  const float direction = std::sqrt(1.0f - alpha_bar_prev - sigma * sigma);
  auto prev = std::sqrt(alpha_bar_prev) * z0 + direction * eps;
  if (sigma > 0) {
    if (!noise.defined()) throw Error("ddim step: eta > 0 needs a noise tensor");
    prev = prev + sigma * noise;
  }
  return prev;
}

DdimStep ddim_step(const torch::Tensor& z_t, const torch::Tensor& eps, float alpha_bar_t,
                   float alpha_bar_prev, double eta, const torch::Tensor& noise) {
  auto z0 = tweedie_estimate(z_t, eps, alpha_bar_t);
  return {ddim_from_estimate(z0, eps, alpha_bar_t, alpha_bar_prev, eta, noise), z0};
}

torch::Tensor seeded_normal(at::IntArrayRef shape, uint64_t seed,
                            const torch::TensorOptions& options) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto noise = torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat));
  return noise.to(options);
}

}  // namespace p2l::diffusion
