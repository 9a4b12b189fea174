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
      auto timer = nets.time(Component::kOptimiser);
      for (auto& optimizer : optimizers) optimizer->zero_grad();
    }
    nets.backward(losses.sum(), v, through);
    auto timer = nets.time(Component::kOptimiser);
    for (int64_t i = 0; i < samples; ++i)
      if (active[i]) optimizers[i]->step();
  }
  return samples == 1 ? v.front().detach() : torch::cat(v, 0).detach();
}

class Resample : public Solver {
 public:
  using Solver::Solver;
  std::string name() const override { return "resample"; }

  Solution solve(const Problem& problem, const StepObserver& observer) override {
    NetworkCounts counts;
    Networks nets(problem, counts);
    const auto text = nets.text_embedding(problem.prompt);
    const auto& h = parameters_;
    const int64_t steps = h.get_int("steps");
    const double rho = h.get("rho");
    const int64_t every = std::max<int64_t>(1, h.get_int("dc-every"));
    const auto first_dc = static_cast<int64_t>(std::ceil(h.get("dc-skip") * steps));
    const auto latent_from = static_cast<int64_t>(std::ceil(h.get("dc-latent-from") * steps));
    const DcSettings pixel{h.get_int("pixel-iters"), h.get("pixel-lr"), h.get("dc-tolerance")};
    const DcSettings latent{h.get_int("latent-iters"), h.get("latent-lr"), h.get("dc-tolerance")};
    const double scale = h.get("resample-scale");
    std::vector<nlohmann::json> dc_steps(problem.samples(), nlohmann::json::array());
    auto step = [&](StepContext& ctx) {
      auto r = ldps_step(nets, ctx, text, rho);
      if (ctx.index < first_dc || (ctx.index - first_dc) % every != 0) return r;
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
      const double sigma = scale * (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev);
      const double denom = sigma + 1 - a_prev;
      auto mean = (sigma * std::sqrt(a_prev) * z0_dc + (1 - a_prev) * r.z_prev) / denom;
      const double variance = sigma * (1 - a_prev) / denom;
      r.z_prev = mean + std::sqrt(variance) * ctx.draw_noise();
      for (size_t s = 0; s < dc_steps.size(); ++s)
        dc_steps[s].push_back({{"step", ctx.index + 1},
                               {"space", in_latent ? "latent" : "pixel"},
                               {"iterations", iterations[s]}});
      return r;
    };
    auto solution = run_ddim(problem, steps, h.get("eta"), nets, counts, step, observer);
    for (size_t s = 0; s < dc_steps.size(); ++s)
      solution.diagnostics[s]["hard_data_consistency"] = dc_steps[s];
    return solution;
  }
};

}  // namespace

std::unique_ptr<Solver> make_resample(Hyperparameters parameters) {
  return std::make_unique<Resample>(std::move(parameters));
}

}  // namespace p2l::solvers
