// Noise schedule and DDIM against diffusers' DDIMScheduler goldens.
#include <gtest/gtest.h>

#include <fstream>
#include <limits>

#include "goldens.h"
#include "p2l/diffusion/schedule.h"
#include "p2l/error.h"
#include "p2l/solvers/solver.h"

namespace p2l::test {
namespace {

diffusion::NoiseSchedule golden_schedule() {
  std::ifstream in(Goldens::get().diffusers_dir() + "/scheduler/scheduler_config.json");
  return diffusion::NoiseSchedule(diffusion::ScheduleConfig::from_json(nlohmann::json::parse(in)));
}

TEST(Schedule, BetasAndAlphasCumprod) {
  const auto s = golden_schedule();
  EXPECT_TRUE(matches_golden(s.betas(), "ddim.betas"));
  EXPECT_TRUE(matches_golden(s.alphas_cumprod(), "ddim.alphas_cumprod"));
  // Computed in float32 in diffusers' order, the schedule is bit-identical on the goldens'
  // LibTorch; another version rounds linspace/cumprod its own way (2.11: 6e-8 at most, 1 ulp).
  const auto want = Goldens::get().tensor("ddim.alphas_cumprod");
  const double max_diff = (s.alphas_cumprod() - want).abs().max().item<double>();
  if (Goldens::get().same_torch_version())
    EXPECT_TRUE(torch::equal(s.alphas_cumprod(), want)) << "max |got - want| = " << max_diff;
  else
    EXPECT_LE(max_diff, 2.0 * std::numeric_limits<float>::epsilon());
}

TEST(Schedule, LeadingTimesteps) {
  const auto s = golden_schedule();
  const auto want = Goldens::get().tensor("ddim.timesteps");
  const auto got = s.timesteps(want.size(0));
  ASSERT_EQ(static_cast<int64_t>(got.size()), want.size(0));
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i].item<int64_t>()) << i;
}

TEST(Schedule, DdimStepsAndTweedie) {
  const auto& g = Goldens::get();
  const auto s = golden_schedule();
  const auto sample = g.tensor("ddim.step.sample");
  const auto eps = g.tensor("ddim.step.model_output");
  const auto ts = g.tensor("ddim.step.timesteps");
  const auto prev_ts = g.tensor("ddim.step.prev_timesteps");
  const int64_t n = g.tensor("ddim.timesteps").size(0);
  std::vector<torch::Tensor> prev, x0;
  for (int64_t i = 0; i < ts.size(0); ++i) {
    const int64_t t = ts[i].item<int64_t>();
    const int64_t t_prev = s.previous_timestep(t, n);
    EXPECT_EQ(t_prev, prev_ts[i].item<int64_t>());
    auto step = diffusion::ddim_step(sample, eps, s.alpha_bar(t), s.alpha_bar(t_prev));
    prev.push_back(step.prev_sample);
    x0.push_back(step.pred_original_sample);
    EXPECT_TRUE(torch::allclose(diffusion::tweedie_estimate(sample, eps, s.alpha_bar(t)),
                                step.pred_original_sample));
  }
  EXPECT_TRUE(matches_golden(torch::stack(prev, 0), "ddim.step.prev_sample"));
  EXPECT_TRUE(matches_golden(torch::stack(x0, 0), "ddim.step.pred_original_sample"));
}

TEST(Schedule, StochasticStepMatchesFormula) {
  // SPEC §2: z' = √ᾱ_prev·ẑ0 + √(1−ᾱ_prev−σ²)·ε + σ·ξ with σ from η.
  const auto s = diffusion::NoiseSchedule();
  auto z = torch::randn({1, 4, 5, 7}, torch::kDouble);
  auto eps = torch::randn({1, 4, 5, 7}, torch::kDouble);
  auto xi = torch::randn({1, 4, 5, 7}, torch::kDouble);
  const double a = s.alpha_bar(501), ap = s.alpha_bar(481), eta = 0.7;
  const double sigma = eta * std::sqrt((1 - ap) / (1 - a)) * std::sqrt(1 - a / ap);
  auto z0 = (z - std::sqrt(1 - a) * eps) / std::sqrt(a);
  auto want = std::sqrt(ap) * z0 + std::sqrt(1 - ap - sigma * sigma) * eps + sigma * xi;
  auto got = diffusion::ddim_step(z, eps, s.alpha_bar(501), s.alpha_bar(481), eta, xi);
  EXPECT_LT(relative_error(got.prev_sample, want), 1e-6);
  EXPECT_THROW(diffusion::ddim_step(z, eps, s.alpha_bar(501), s.alpha_bar(481), eta),
               p2l::Error);
}

TEST(Schedule, FinalStepUsesFirstAlpha) {
  const diffusion::NoiseSchedule s;
  EXPECT_EQ(s.alpha_bar(-19), s.alpha_bar(0));
  EXPECT_THROW(s.timesteps(0), p2l::Error);
  EXPECT_THROW(s.alpha_bar(1000), p2l::Error);
}

// SD's schedule: 1000 training steps with steps_offset 1. 999 DDIM steps run from t = 999 down
// to 1; 1000 would start at t = 1000, which does not exist: an error naming --steps and 999.
// Every method's default step count at SD's scale fits SD's schedule (it was 1000: a default
// run on an SD model failed at its first step).
TEST(Schedule, SdDefaultStepCountsFitTheSchedule) {
  const diffusion::NoiseSchedule s;
  for (const auto& method : solvers::method_names()) {
    const auto steps =
        solvers::default_hyperparameters(method, solvers::Scale::kSd512).get_int("steps");
    EXPECT_NO_THROW(s.timesteps(steps)) << method << ": " << steps << " steps";
  }
}

TEST(Schedule, MostStepsTheOffsetLeavesRoomFor) {
  const diffusion::NoiseSchedule s;
  const auto ts = s.timesteps(999);
  EXPECT_EQ(ts.front(), 999);
  EXPECT_EQ(ts.back(), 1);
  for (const auto t : ts) EXPECT_NO_THROW(s.alpha_bar(t));
  try {
    s.timesteps(1000);
    FAIL() << "1000 steps accepted";
  } catch (const p2l::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("--steps 1000"), std::string::npos) << message;
    EXPECT_NE(message.find("at most 999"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace p2l::test
