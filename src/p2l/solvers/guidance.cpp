#include "p2l/solvers/guidance.h"

#include <torch/cuda.h>

#include <algorithm>
#include <cmath>

#include "p2l/diffusion/schedule.h"

namespace p2l::solvers {

Networks::Timer::Timer(ActivityTimes* profile, Activity activity)
    : profile_(profile), activity_(activity) {
  if (!profile_) return;
  if (profile_->synchronize_cuda) torch::cuda::synchronize();
  start_ = std::chrono::steady_clock::now();
}

Networks::Timer::~Timer() {
  if (!profile_) return;
  if (profile_->synchronize_cuda) torch::cuda::synchronize();
  (*profile_)[activity_] +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

Networks::Networks(const Problem& problem, NetworkCounts& counts)
    : problem_(problem), model_(*problem.model), counts_(counts) {}

torch::Tensor Networks::text_embedding() {
  auto timer = time(Activity::kTextEncoder);
  torch::NoGradGuard no_grad;
  const auto& prompts = problem_.prompts;
  const bool one = std::all_of(prompts.begin(), prompts.end(),
                               [&](const std::string& p) { return p == problem_.prompt_of(0); });
  if (one) return model_.encode_prompts({problem_.prompt_of(0)});
  // Each prompt encoded alone, as its unbatched solve encodes it.
  std::vector<torch::Tensor> rows;
  for (const auto& prompt : prompts) rows.push_back(model_.encode_prompts({prompt}));
  return torch::cat(rows);
}

torch::Tensor Networks::eps(const torch::Tensor& z_t, int64_t t, const torch::Tensor& text) {
  auto timer = time(Activity::kUnetForward);
  ++counts_.unet_forward;
  auto timestep = torch::full({z_t.size(0)}, t, torch::TensorOptions().dtype(torch::kLong));
  // One text condition for a whole batch is the same condition for every sample.
  const auto context =
      text.size(0) == 1 && z_t.size(0) > 1 ? text.expand({z_t.size(0), -1, -1}) : text;
  return model_.predict_noise(z_t, timestep, context);
}

torch::Tensor Networks::decode(const torch::Tensor& z) {
  auto timer = time(Activity::kDecoderForward);
  ++counts_.decoder_forward;
  return model_.decode(z);
}

torch::Tensor Networks::encode(const torch::Tensor& x) {
  auto timer = time(Activity::kEncoderForward);
  ++counts_.encoder_forward;
  return model_.encode(x);
}

torch::Tensor Networks::measure(const torch::Tensor& x) {
  auto timer = time(Activity::kOperator);
  ++counts_.operator_forward;
  return problem_.op->forward(x);
}

torch::Tensor Networks::adjoint(const torch::Tensor& v) {
  auto timer = time(Activity::kOperator);
  return problem_.op->adjoint(v);
}

torch::Tensor Networks::residual_norm(const torch::Tensor& x) {
  auto measured = measure(x);
  auto timer = time(Activity::kOperator);
  return sample_norms(problem_.y - measured);
}

torch::Tensor sample_norms(const torch::Tensor& x) {
  return x.size(0) == 1 ? x.norm().reshape({1}) : x.flatten(1).norm(2, 1);
}

std::vector<double> per_sample(const torch::Tensor& values) {
  const auto v = values.detach().to(torch::kCPU, torch::kDouble).contiguous();
  return std::vector<double>(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
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
  auto timer = time(Activity::kBackward);
  count_backward(through);
  // Only into `leaves`: a plain loss.backward() also forms and keeps the gradient of every weight
  // of the networks in the graph (they require grad), which no solver uses — as much work again
  // as the input gradient, and the weights' size in memory (3.4 GB for SD's UNet). The gradient
  // that reaches the leaves is computed by the same operations either way.
  loss.backward({}, {}, /*create_graph=*/false, leaves);
}

torch::Tensor Networks::gradient(const torch::Tensor& loss, const torch::Tensor& input,
                                 std::initializer_list<Network> through) {
  auto timer = time(Activity::kBackward);
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
    auto timer = nets.time(Activity::kOptimiser);
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

}  // namespace p2l::solvers
