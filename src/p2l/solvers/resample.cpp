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

// AdamW on `start` (torch's defaults besides lr) until ‖y − A(decode(v))‖² < tolerance.
template <typename Map>
torch::Tensor minimise_residual(Networks& nets, const torch::Tensor& start, const DcSettings& s,
                                Map&& to_image, std::initializer_list<Network> through,
                                int64_t& iterations) {
  auto v = start.detach().clone().requires_grad_(true);
  torch::optim::AdamW optimizer({v}, torch::optim::AdamWOptions(s.lr));
  for (iterations = 0; iterations < s.iters; ++iterations) {
    torch::Tensor loss = nets.residual_norm(to_image(v)).pow(2);
    if (loss.item<double>() < s.tolerance) break;
    {
      auto timer = nets.time(Component::kOptimiser);
      optimizer.zero_grad();
    }
    nets.backward(loss, v, through);
    auto timer = nets.time(Component::kOptimiser);
    optimizer.step();
  }
  return v.detach();
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
    auto dc_steps = nlohmann::json::array();
    auto step = [&](StepContext& ctx) {
      auto r = ldps_step(nets, ctx, text, rho);
      if (ctx.index < first_dc || (ctx.index - first_dc) % every != 0) return r;
      int64_t iterations = 0;
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
      dc_steps.push_back({{"step", ctx.index + 1},
                          {"space", in_latent ? "latent" : "pixel"},
                          {"iterations", iterations}});
      return r;
    };
    auto solution = run_ddim(problem, steps, h.get("eta"), nets, counts, step, observer);
    solution.diagnostics["hard_data_consistency"] = dc_steps;
    return solution;
  }
};

}  // namespace

std::unique_ptr<Solver> make_resample(Hyperparameters parameters) {
  return std::make_unique<Resample>(std::move(parameters));
}

}  // namespace p2l::solvers
