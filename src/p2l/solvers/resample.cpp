// ReSample (SPEC §4): LDPS steps, and at every k-th step after the first part, hard data
// consistency — in the middle part argmin_x ‖y − Ax‖² from D(ẑ0) (pixel space, then encode),
// in the last part argmin_z ‖y − A(D(z))‖² from ẑ0 (latent space) — followed by stochastic
// resampling of z_{t−1} around the data-consistent ẑ0 and the LDPS z'.
#include <cmath>

#include "p2l/solvers/guidance.h"
#include "p2l/solvers/methods.h"

namespace p2l::solvers {
namespace {

struct DcSettings {
  int64_t iters;
  double lr, tolerance;
};

// AdamW on `start` (torch's defaults besides lr) until ‖y − A(decode(v))‖² < tolerance, each
// sample of a batch with its own optimiser and its own stop, as its unbatched solve would run;
// `iterations` gets each sample's count.
template <typename Map>
torch::Tensor minimise_residual(Networks& nets, const torch::Tensor& start, const DcSettings& s,
                                Map&& to_image, std::initializer_list<Network> through,
                                std::vector<int64_t>& iterations) {
  const int64_t samples = start.size(0);
  std::vector<torch::Tensor> v;
  std::vector<std::unique_ptr<torch::optim::AdamW>> optimizers;
  for (int64_t i = 0; i < samples; ++i) {
    v.push_back(start.slice(0, i, i + 1).detach().clone().requires_grad_(true));
    optimizers.push_back(std::make_unique<torch::optim::AdamW>(
        std::vector<torch::Tensor>{v.back()}, torch::optim::AdamWOptions(s.lr)));
  }
  iterations.assign(samples, s.iters);
  std::vector<bool> active(samples, true);
  for (int64_t it = 0; it < s.iters; ++it) {
    const auto batch = samples == 1 ? v.front() : torch::cat(v, 0);
    torch::Tensor losses = nets.residual_norm(to_image(batch)).pow(2);
    const auto values = per_sample(losses);
    bool any = false;
    for (int64_t i = 0; i < samples; ++i) {
      if (active[i] && values[i] < s.tolerance) {
        active[i] = false;
        iterations[i] = it;
      }
      any = any || active[i];
    }
    if (!any) break;
    {
      auto timer = nets.time(Activity::kOptimiser);
      for (auto& optimizer : optimizers) optimizer->zero_grad();
    }
    nets.backward(losses.sum(), v, through);
    auto timer = nets.time(Activity::kOptimiser);
    for (int64_t i = 0; i < samples; ++i)
      if (active[i]) optimizers[i]->step();
  }
  return samples == 1 ? v.front().detach() : torch::cat(v, 0).detach();
}

struct ResampleParameters {
  int64_t steps = kSmallSteps;
  double eta = 0;
  double rho = kSmallStep;
  int64_t dc_every = 10;
  double dc_skip = 1.0 / 3;
  double dc_latent_from = 2.0 / 3;
  int64_t pixel_iters = 200;
  double pixel_lr = 1e-2;
  int64_t latent_iters = 50;
  double latent_lr = 5e-3;
  double dc_tolerance = 1e-6;
  double resample_scale = 40.0;

  static ResampleParameters small() { return {}; }
  static ResampleParameters sd512() {
    ResampleParameters p;
    p.steps = 500;
    p.rho = 1.0;
    p.pixel_iters = 2000;
    p.latent_iters = 500;
    return p;
  }
  static std::vector<Field<ResampleParameters>> fields() {
    using P = ResampleParameters;
    const Bound share{0, false, 1};
    const Bound positive{0, true};
    return with_ddim_fields<P>(
        {{"rho", "step size ρ of the LDPS steps", &P::rho},
         {"dc-every", "hard data consistency every k-th step", &P::dc_every, Bound{1}},
         {"dc-skip", "share of the first steps without hard data consistency", &P::dc_skip, share},
         {"dc-latent-from", "share of the steps after which it optimises the latent",
          &P::dc_latent_from, share},
         {"pixel-iters", "AdamW iterations of the pixel-space problem", &P::pixel_iters},
         {"pixel-lr", "learning rate of the pixel-space problem", &P::pixel_lr, positive},
         {"latent-iters", "AdamW iterations of the latent-space problem", &P::latent_iters},
         {"latent-lr", "learning rate of the latent-space problem", &P::latent_lr, positive},
         {"dc-tolerance", "stop an optimisation when ‖y − Ax‖² falls below this",
          &P::dc_tolerance},
         {"resample-scale", "scale of the resampling variance σ_t", &P::resample_scale}});
  }
};

class Resample : public Solver {
 public:
  using Parameters = ResampleParameters;
  using Solver::Solver;

 protected:
  StepFunction start(Networks& nets, const torch::Tensor& text,
                     Diagnostics& diagnostics) override {
    const auto p = parameters().as<Parameters>();
    const auto first_dc = static_cast<int64_t>(std::ceil(p.dc_skip * p.steps));
    const auto latent_from = static_cast<int64_t>(std::ceil(p.dc_latent_from * p.steps));
    const DcSettings pixel{p.pixel_iters, p.pixel_lr, p.dc_tolerance};
    const DcSettings latent{p.latent_iters, p.latent_lr, p.dc_tolerance};
    for (auto& d : diagnostics) d["hard_data_consistency"] = nlohmann::json::array();
    return [&nets, &diagnostics, text, p, first_dc, latent_from, pixel,
            latent](StepContext& ctx) {
      auto r = ldps_step(nets, ctx, text, p.rho);
      if (ctx.index < first_dc || (ctx.index - first_dc) % p.dc_every != 0) return r;
      std::vector<int64_t> iterations;
      torch::Tensor z0_dc;
      const bool in_latent = ctx.index >= latent_from;
      if (in_latent) {
        z0_dc = minimise_residual(
            nets, r.z0, latent, [&](const torch::Tensor& z) { return nets.decode(z); },
            {Network::kDecoder}, iterations);
      } else {
        auto x = minimise_residual(nets, r.estimate, pixel,
                                   [](const torch::Tensor& x) { return x; }, {}, iterations);
        torch::NoGradGuard no_grad;
        z0_dc = nets.encode(x);
      }
      ctx.check_finite(z0_dc, "the data-consistent estimate");
      torch::NoGradGuard no_grad;
      const double a_t = ctx.alpha_bar_t, a_prev = ctx.alpha_bar_prev;
      const double sigma = p.resample_scale * (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev);
      const double denom = sigma + 1 - a_prev;
      auto mean = (sigma * std::sqrt(a_prev) * z0_dc + (1 - a_prev) * r.z_prev) / denom;
      const double variance = sigma * (1 - a_prev) / denom;
      r.z_prev = mean + std::sqrt(variance) * ctx.draw_noise();
      for (size_t s = 0; s < diagnostics.size(); ++s)
        diagnostics[s]["hard_data_consistency"].push_back(
            {{"step", ctx.index + 1},
             {"space", in_latent ? "latent" : "pixel"},
             {"iterations", iterations[s]}});
      return r;
    };
  }
};

}  // namespace

Method resample_method() { return method_row<Resample>("resample"); }

}  // namespace p2l::solvers
