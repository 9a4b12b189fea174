// Solver::solve: the shared set-up and the DDIM loop every method runs its step in.
#include "p2l/solvers/solver.h"

#include <cmath>

#include "p2l/diffusion/schedule.h"
#include "p2l/model/precision.h"
#include "p2l/solvers/guidance.h"

namespace p2l::solvers {

Problem problem_of(model::StableDiffusion& model, const operators::Measurement& measurement,
                   uint64_t seed) {
  Problem problem;
  problem.model = &model;
  problem.op = measurement.op;
  problem.y = measurement.y.to(model.device(), model.arithmetic_dtype());
  problem.height = measurement.height;
  problem.width = measurement.width;
  problem.seed = seed;
  return problem;
}

nlohmann::json NetworkCounts::to_json() const {
  return {{"unet_forward", unet_forward},       {"unet_backward", unet_backward},
          {"encoder_forward", encoder_forward}, {"encoder_backward", encoder_backward},
          {"decoder_forward", decoder_forward}, {"decoder_backward", decoder_backward},
          {"operator_forward", operator_forward}};
}

const char* activity_name(Activity activity) {
  switch (activity) {
    case Activity::kTextEncoder: return "text encoder";
    case Activity::kUnetForward: return "UNet fwd";
    case Activity::kDecoderForward: return "decoder fwd";
    case Activity::kEncoderForward: return "encoder fwd";
    case Activity::kBackward: return "backward";
    case Activity::kOperator: return "operator";
    case Activity::kOptimiser: return "optimiser";
  }
  return "?";
}

Solution Solution::sample(int64_t i) const {
  Solution s;
  s.latent = latent.slice(0, i, i + 1);
  s.image = image.slice(0, i, i + 1);
  s.counts = counts;
  s.data_residual = {data_residual.at(i)};
  s.diagnostics = {diagnostics.at(i)};
  return s;
}

namespace {

// Checks that the model can restore problem's image size and y matches the operator.
void check_problem(const Problem& problem) {
  if (!problem.model || !problem.op || !problem.y.defined())
    throw Error("solver: the problem needs a model, an operator and a measurement");
  const auto& config = problem.model->config;
  const int64_t f = config.vae.downsampling_factor();
  if (problem.height <= 0 || problem.width <= 0 || problem.height % f || problem.width % f)
    throw Error("solver: image size " + std::to_string(problem.height) + "x" +
                std::to_string(problem.width) + " is not a positive multiple of the " +
                "autoencoder's factor " + std::to_string(f));
  const int64_t native = config.unet.sample_size * f;
  if (problem.height != native || problem.width != native)
    throw Error("solver: the measurement is for " + std::to_string(problem.height) + "x" +
                std::to_string(problem.width) + " images but the model works at " +
                std::to_string(native) + "x" + std::to_string(native) +
                " (degrade an image of the model's resolution)");
  const int64_t batch = problem.y.defined() && problem.y.dim() > 0 ? problem.y.size(0) : 1;
  if (batch != 1 && batch != problem.samples())
    throw Error("solver: the measurement y holds " + std::to_string(batch) +
                " measurements for " + std::to_string(problem.samples()) + " samples");
  if (problem.samples() < 1) throw Error("solver: no samples to draw");
  if (!problem.prompts.empty() &&
      static_cast<int64_t>(problem.prompts.size()) != problem.samples())
    throw Error("solver: " + std::to_string(problem.prompts.size()) + " prompts for " +
                std::to_string(problem.samples()) + " samples");
  const std::vector<int64_t> image = {batch, config.vae.in_channels, problem.height,
                                      problem.width};
  const auto expected = problem.op->output_shape(image);
  if (problem.y.sizes().vec() != expected)
    throw Error("solver: the measurement y has shape " + c10::str(problem.y.sizes()) +
                " but the operator maps the image to " + c10::str(at::IntArrayRef(expected)));
}

}  // namespace

TimestepSchedule ddim_schedule(const diffusion::NoiseSchedule& schedule, int64_t steps) {
  if (steps <= 0) throw Error("solver: --steps must be positive");
  TimestepSchedule list;
  for (const int64_t t : schedule.timesteps(steps))
    list.push_back({t, schedule.previous_timestep(t, steps)});
  return list;
}

void Solver::set_schedule(TimestepSchedule schedule) {
  for (size_t i = 0; i < schedule.size(); ++i) {
    const auto& s = schedule[i];
    if (s.t < 0 || s.t_prev >= s.t || (i > 0 && s.t >= schedule[i - 1].t))
      throw Error(name() + ": timestep " + std::to_string(i + 1) + " (" + std::to_string(s.t) +
                  " to " + std::to_string(s.t_prev) +
                  ") is not below the one before it, or does not step down");
  }
  if (!schedule.empty())
    parameters_.set("steps", static_cast<double>(schedule.size()), name());
  schedule_ = std::move(schedule);
}

Solution Solver::solve(const Problem& problem, const StepObserver& observer) {
  check_problem(problem);
  auto& model = *problem.model;
  const auto timesteps =
      schedule_.empty() ? ddim_schedule(*model.schedule, parameters_.get_int("steps")) : schedule_;
  const auto steps = static_cast<int64_t>(timesteps.size());
  const double eta = parameters_.get("eta");
  NetworkCounts counts;
  Networks nets(problem, counts);
  const auto text = nets.text_embedding();
  Diagnostics diagnostics(problem.samples(), nlohmann::json::object());
  const auto step = start(nets, text, diagnostics);

  const int64_t f = model.config.vae.downsampling_factor();
  const auto options =
      torch::TensorOptions().dtype(model.arithmetic_dtype()).device(model.device());
  const std::vector<int64_t> shape = {1, model.config.unet.in_channels, problem.height / f,
                                      problem.width / f};
  // Each sample's z_T from its seed, and its step noise (η > 0, ReSample's resampling) from its
  // own stream (seed + 1), drawn on the CPU so that a seed gives the same run on every device
  // and in every batch.
  const auto seeds = problem.sample_seeds();
  const auto samples = static_cast<int64_t>(seeds.size());
  std::vector<torch::Tensor> starts;
  std::vector<at::Generator> noise_gens;
  for (const auto seed : seeds) {
    starts.push_back(diffusion::seeded_normal(shape, seed, options));
    noise_gens.push_back(at::detail::createCPUGenerator(seed + 1));
  }
  auto z = samples == 1 ? starts.front() : torch::cat(starts, 0);
  Solution solution;
  solution.data_residual.resize(samples);
  torch::Tensor last_finite;
  // Reduced precision can overflow where float32 does not: say so with the step-size hint.
  const auto precision = model::precision_name(model::precision_of(model.dtype()));
  const auto vae_precision = model::precision_name(model::precision_of(model.vae_dtype()));
  std::string hint = "lower the step size";
  if (precision != "fp32" || vae_precision != "fp32")
    hint += ", or compute in fp32 (--precision fp32 --vae-precision fp32; the networks ran in " +
            precision + ", the autoencoder in " + vae_precision + ")";
  for (int64_t i = 0; i < steps; ++i) {
    StepContext ctx;
    ctx.index = i;
    ctx.total = steps;
    ctx.t = timesteps[i].t;
    ctx.t_prev = timesteps[i].t_prev;
    ctx.alpha_bar_t = model.schedule->alpha_bar(ctx.t);
    ctx.alpha_bar_prev = model.schedule->alpha_bar(ctx.t_prev);
    ctx.eta = eta;
    ctx.z_t = z;
    ctx.samples = samples;
    ctx.draw_noise = [&] {
      std::vector<torch::Tensor> noise;
      for (auto& gen : noise_gens)
        noise.push_back(
            torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat)).to(options));
      return samples == 1 ? noise.front() : torch::cat(noise, 0);
    };
    ctx.check_finite = [&, i](const torch::Tensor& x, const std::string& what) {
      if (!torch::isfinite(x).all().item<bool>())
        throw DivergenceError("solver diverged at step " + std::to_string(i + 1) + " of " +
                                  std::to_string(steps) + " (t = " + std::to_string(ctx.t) +
                                  "): " + what + " is not finite; " + hint,
                              i + 1, last_finite);
    };
    auto result = step(ctx);
    double mean_residual = 0;
    for (const double r : result.data_residual) {
      if (!std::isfinite(r)) ctx.check_finite(torch::tensor(r), "the data residual");
      mean_residual += r / samples;
    }
    ctx.check_finite(result.estimate, "the estimate D(z0)");
    last_finite = result.estimate;
    ctx.check_finite(result.z_prev, "the latent");
    z = result.z_prev.detach();
    for (int64_t s = 0; s < samples; ++s)
      solution.data_residual[s].push_back(result.data_residual.at(s));
    if (observer) observer({i + 1, steps, ctx.t, mean_residual, result.estimate});
  }
  torch::NoGradGuard no_grad;
  solution.latent = z;
  solution.image = nets.decode(z);
  if (!torch::isfinite(solution.image).all().item<bool>())
    throw DivergenceError("solver diverged: the final image D(z0) is not finite; " + hint, steps,
                          last_finite);
  solution.counts = counts;
  solution.diagnostics = std::move(diagnostics);
  return solution;
}


}  // namespace p2l::solvers
