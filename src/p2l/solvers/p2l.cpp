// P2L (SPEC §4): prompt-tuning latent diffusion. Each step (1) tunes the text embedding C by K
// Adam iterations on ‖y − A(D(ẑ0(z_t, C)))‖² (warm-started: one optimiser for the whole run),
// (2) predicts ε and ẑ0 under the tuned C with gradients from z_t, (3) every γ-th step of the
// last part projects ẑ0 onto the encoder's range through the proximal problem, (4) takes the
// DDIM step with the projected ẑ0, (5) subtracts ρ·∇_{z_t}‖y − A(D(ẑ0))‖.
// With prompt tuning and projection off it is LDPS, operation for operation.
#include <cmath>

#include "p2l/solvers/guidance.h"
#include "p2l/solvers/methods.h"

namespace p2l::solvers {
namespace {

class P2l : public Solver {
 public:
  using Solver::Solver;
  std::string name() const override { return "p2l"; }

  Solution solve(const Problem& problem, const StepObserver& observer) override {
    NetworkCounts counts;
    Networks nets(problem, counts);
    const auto& h = parameters_;
    const int64_t steps = h.get_int("steps");
    const double rho = h.get("rho");
    const bool tune = h.get_flag("prompt-tuning") && h.get_int("prompt-iters") > 0;
    const int64_t iters = h.get_int("prompt-iters");
    const bool project = h.get_flag("projection");
    const double lambda = h.get("lambda");
    if (project && !(lambda > 0)) throw Error("p2l: --lambda must be > 0 (or inf)");
    const int64_t every = std::max<int64_t>(1, h.get_int("projection-every"));
    const auto project_from = static_cast<int64_t>(std::ceil(h.get("projection-start") * steps));
    const int64_t cg_iters = h.get_int("cg-iters");

    // One embedding per sample (Adam is elementwise, so the samples are tuned apart).
    const int64_t samples = problem.samples();
    auto text = nets.text_embedding(problem.prompt).detach();
    if (tune && samples > 1) text = text.repeat({samples, 1, 1});
    text.requires_grad_(tune);
    torch::optim::Adam optimizer({text}, torch::optim::AdamOptions(h.get("prompt-lr")));
    std::vector<std::vector<double>> before(samples), after(samples);

    auto step = [&](StepContext& ctx) {
      if (tune) {
        const auto z_t = ctx.z_t.detach();
        for (int64_t k = 0; k < iters; ++k) {
          auto p = predict(nets, z_t, ctx.t, ctx.alpha_bar_t, text);
          const auto losses = p.residual.pow(2);
          auto loss = losses.sum();
          ctx.check_finite(loss, "the prompt-tuning loss");
          if (k == 0) {
            const auto values = per_sample(losses);
            for (int64_t s = 0; s < samples; ++s) before[s].push_back(values[s]);
          }
          {
            auto timer = nets.time(Component::kOptimiser);
            optimizer.zero_grad();
          }
          nets.backward(loss, text, {Network::kUnet, Network::kDecoder});
          {
            auto timer = nets.time(Component::kOptimiser);
            optimizer.step();
          }
          ctx.check_finite(text, "the text embedding");
        }
      }
      const bool projecting =
          project && ctx.index >= project_from && (ctx.index - project_from) % every == 0;
      auto projection = [&](const torch::Tensor&, const torch::Tensor& decoded) {
        return project_to_encoder_range(nets, decoded, lambda, cg_iters);
      };
      const auto conditioning = tune ? text.detach() : text;
      auto r = ldps_step(nets, ctx, conditioning, rho,
                         projecting ? EstimateTransform(projection) : EstimateTransform());
      if (tune)
        for (int64_t s = 0; s < samples; ++s)
          after[s].push_back(r.data_residual[s] * r.data_residual[s]);
      return r;
    };
    auto solution = run_ddim(problem, steps, h.get("eta"), nets, counts, step, observer);
    if (tune) {
      // Data loss of each step before its K prompt iterations and after them (same z_t).
      for (int64_t s = 0; s < samples; ++s) {
        solution.diagnostics[s]["prompt_loss_before"] = before[s];
        solution.diagnostics[s]["prompt_loss_after"] = after[s];
      }
    }
    return solution;
  }
};

}  // namespace

std::unique_ptr<Solver> make_p2l(Hyperparameters parameters) {
  return std::make_unique<P2l>(std::move(parameters));
}

}  // namespace p2l::solvers
