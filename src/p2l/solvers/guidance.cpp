#include "p2l/solvers/guidance.h"

#include <torch/cuda.h>

#include <cmath>

#include "p2l/diffusion/schedule.h"
#include "p2l/diffusion/text_to_image.h"
#include "p2l/model/precision.h"

namespace p2l::solvers {

nlohmann::json NetworkCounts::to_json() const {
  return {{"unet_forward", unet_forward},       {"unet_backward", unet_backward},
          {"encoder_forward", encoder_forward}, {"encoder_backward", encoder_backward},
          {"decoder_forward", decoder_forward}, {"decoder_backward", decoder_backward},
          {"operator_forward", operator_forward}};
}

const char* component_name(Component component) {
  switch (component) {
    case Component::kTextEncoder: return "text encoder";
    case Component::kUnetForward: return "UNet fwd";
    case Component::kDecoderForward: return "decoder fwd";
    case Component::kEncoderForward: return "encoder fwd";
    case Component::kBackward: return "backward";
    case Component::kOperator: return "operator";
    case Component::kOptimiser: return "optimiser";
  }
  return "?";
}

Networks::Timer::Timer(ComponentTimes* profile, Component component)
    : profile_(profile), component_(component) {
  if (!profile_) return;
  if (profile_->synchronize_cuda) torch::cuda::synchronize();
  start_ = std::chrono::steady_clock::now();
}

Networks::Timer::~Timer() {
  if (!profile_) return;
  if (profile_->synchronize_cuda) torch::cuda::synchronize();
  (*profile_)[component_] +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

Networks::Networks(const Problem& problem, NetworkCounts& counts)
    : problem_(problem), model_(*problem.model), counts_(counts) {}

torch::Tensor Networks::text_embedding(const std::string& prompt) {
  auto timer = time(Component::kTextEncoder);
  torch::NoGradGuard no_grad;
  return model_.encode_prompts({prompt});
}

torch::Tensor Networks::eps(const torch::Tensor& z_t, int64_t t, const torch::Tensor& text) {
  auto timer = time(Component::kUnetForward);
  ++counts_.unet_forward;
  auto timestep = torch::full({z_t.size(0)}, t, torch::TensorOptions().dtype(torch::kLong));
  // One text condition for a whole batch is the same condition for every sample.
  const auto context =
      text.size(0) == 1 && z_t.size(0) > 1 ? text.expand({z_t.size(0), -1, -1}) : text;
  return model_.predict_noise(z_t, timestep, context);
}

torch::Tensor Networks::decode(const torch::Tensor& z) {
  auto timer = time(Component::kDecoderForward);
  ++counts_.decoder_forward;
  return model_.decode(z);
}

torch::Tensor Networks::encode(const torch::Tensor& x) {
  auto timer = time(Component::kEncoderForward);
  ++counts_.encoder_forward;
  return model_.encode(x);
}

torch::Tensor Networks::measure(const torch::Tensor& x) {
  auto timer = time(Component::kOperator);
  ++counts_.operator_forward;
  return problem_.op->forward(x);
}

torch::Tensor Networks::adjoint(const torch::Tensor& v) {
  auto timer = time(Component::kOperator);
  return problem_.op->adjoint(v);
}

torch::Tensor Networks::residual_norm(const torch::Tensor& x) {
  auto measured = measure(x);
  auto timer = time(Component::kOperator);
  return sample_norms(problem_.y - measured);
}

torch::Tensor sample_norms(const torch::Tensor& x) {
  return x.size(0) == 1 ? x.norm().reshape({1}) : x.flatten(1).norm(2, 1);
}

std::vector<double> per_sample(const torch::Tensor& values) {
  const auto v = values.detach().to(torch::kCPU, torch::kDouble).contiguous();
  return std::vector<double>(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
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

void Networks::count_backward(std::initializer_list<Network> through) {
  for (auto n : through) {
    if (n == Network::kUnet) ++counts_.unet_backward;
    if (n == Network::kEncoder) ++counts_.encoder_backward;
    if (n == Network::kDecoder) ++counts_.decoder_backward;
  }
}

void Networks::backward(const torch::Tensor& loss, torch::TensorList leaves,
                        std::initializer_list<Network> through) {
  auto timer = time(Component::kBackward);
  count_backward(through);
  // Only into `leaves`: a plain loss.backward() also forms and keeps the gradient of every weight
  // of the networks in the graph (they require grad), which no solver uses — as much work again
  // as the input gradient, and the weights' size in memory (3.4 GB for SD's UNet). The gradient
  // that reaches the leaves is computed by the same operations either way.
  loss.backward({}, {}, /*create_graph=*/false, leaves);
}

torch::Tensor Networks::gradient(const torch::Tensor& loss, const torch::Tensor& input,
                                 std::initializer_list<Network> through) {
  auto timer = time(Component::kBackward);
  count_backward(through);
  return torch::autograd::grad({loss}, {input})[0];
}

Prediction predict(Networks& nets, const torch::Tensor& z_t, int64_t t, float alpha_bar_t,
                   const torch::Tensor& text) {
  Prediction p;
  p.z_t = z_t;
  p.eps = nets.eps(z_t, t, text);
  p.z0 = diffusion::tweedie_estimate(z_t, p.eps, alpha_bar_t);
  p.decoded = nets.decode(p.z0);
  p.residual = nets.residual_norm(p.decoded);
  return p;
}

torch::Tensor latent_gradient(Networks& nets, const torch::Tensor& loss, const torch::Tensor& z_t,
                              std::initializer_list<Network> through) {
  return nets.gradient(loss, z_t, through);
}

torch::Tensor project_to_encoder_range(Networks& nets, const torch::Tensor& decoded, double lambda,
                                       int64_t cg_iters) {
  torch::NoGradGuard no_grad;
  auto x = decoded.detach();
  if (!std::isinf(lambda)) {
    auto b = nets.adjoint(nets.y()) + lambda * x;
    auto timer = nets.time(Component::kOptimiser);
    x = nets.op().solve_regularized(b, lambda, x, cg_iters);
  }
  return nets.encode(x);
}

torch::Tensor StepContext::ddim(const torch::Tensor& z0, const torch::Tensor& eps) const {
  const bool noisy = diffusion::ddim_sigma(alpha_bar_t, alpha_bar_prev, eta) > 0;
  return diffusion::ddim_from_estimate(z0, eps, alpha_bar_t, alpha_bar_prev, eta,
                                       noisy ? draw_noise() : torch::Tensor());
}

StepResult guided_step(Networks& nets, StepContext& ctx, const torch::Tensor& text,
                       const GuidanceLoss& loss, std::initializer_list<Network> through,
                       const EstimateTransform& z0_for_ddim) {
  auto z_t = ctx.z_t.detach().requires_grad_(true);
  auto p = predict(nets, z_t, ctx.t, ctx.alpha_bar_t, text);
  // The samples' losses are summed: each sample's latent gets its own loss's gradient.
  auto grad = latent_gradient(nets, loss(nets, p).sum(), z_t, through);
  torch::NoGradGuard no_grad;
  StepResult r;
  r.z0 = p.z0.detach();
  r.eps = p.eps.detach();
  r.estimate = p.decoded.detach();
  r.data_residual = per_sample(p.residual);
  auto z0 = z0_for_ddim ? z0_for_ddim(r.z0, r.estimate) : r.z0;
  r.z_prev = ctx.ddim(z0, r.eps) - grad;
  return r;
}

StepResult ldps_step(Networks& nets, StepContext& ctx, const torch::Tensor& text, double rho,
                     const EstimateTransform& z0_for_ddim) {
  return guided_step(
      nets, ctx, text, [rho](Networks&, const Prediction& p) { return rho * p.residual; },
      {Network::kUnet, Network::kDecoder}, z0_for_ddim);
}

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
  const std::vector<int64_t> image = {batch, config.vae.in_channels, problem.height,
                                      problem.width};
  const auto expected = problem.op->output_shape(image);
  if (problem.y.sizes().vec() != expected)
    throw Error("solver: the measurement y has shape " + c10::str(problem.y.sizes()) +
                " but the operator maps the image to " + c10::str(at::IntArrayRef(expected)));
}

Solution run_ddim(const Problem& problem, int64_t steps, double eta, Networks& nets,
                  NetworkCounts& counts, const StepFunction& step,
                  const StepObserver& observer) {
  check_problem(problem);
  if (steps <= 0) throw Error("solver: --steps must be positive");
  auto& model = *problem.model;
  const auto& schedule = *model.schedule;
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
  solution.diagnostics.assign(samples, nlohmann::json::object());
  torch::Tensor last_finite;
  const auto timesteps = schedule.timesteps(steps);
  // Reduced precision can overflow where float32 does not: say so with the step-size hint.
  const auto precision = model::precision_of(model.dtype());
  const std::string hint =
      precision == model::Precision::kFloat32
          ? "lower the step size"
          : "lower the step size, or compute in fp32 (--precision fp32; the networks ran in " +
                model::precision_name(precision) + ")";
  for (int64_t i = 0; i < steps; ++i) {
    StepContext ctx;
    ctx.index = i;
    ctx.total = steps;
    ctx.t = timesteps[i];
    ctx.t_prev = schedule.previous_timestep(ctx.t, steps);
    ctx.alpha_bar_t = schedule.alpha_bar(ctx.t);
    ctx.alpha_bar_prev = schedule.alpha_bar(ctx.t_prev);
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
  return solution;
}

}  // namespace p2l::solvers
