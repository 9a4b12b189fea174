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

struct P2lParameters {
  int64_t steps = kSmallSteps;
  double eta = 0;
  double rho = kSmallStep;
  bool prompt_tuning = true;
  int64_t prompt_iters = 1;
  double prompt_lr = 1e-2;
  bool projection = true;
  double lambda = 1.0;
  // Every step of the last half pulled the small model's latents off (E∘D repeated 100 times;
  // docs/solvers.md): every 10th step keeps the projection's benefit.
  int64_t projection_every = 10;
  double projection_start = 0.5;
  int64_t cg_iters = 5;

  static P2lParameters small() { return {}; }
  static P2lParameters sd512() {
    P2lParameters p;
    p.steps = kSdSteps;
    p.rho = 1.0;
    p.prompt_lr = 1e-3;
    p.projection_every = 1;
    return p;
  }
  static std::vector<Field<P2lParameters>> fields() {
    using P = P2lParameters;
    return with_ddim_fields<P>(
        {{"rho", "step size ρ of the data-consistency gradient (step 5)", &P::rho},
         {"prompt-tuning", "tune the text embedding (0 = off, the ablation)", &P::prompt_tuning},
         {"prompt-iters", "Adam iterations K on the text embedding per step", &P::prompt_iters},
         {"prompt-lr", "Adam learning rate of the prompt", &P::prompt_lr, Bound{0, true}},
         {"projection", "project ẑ0 onto the encoder's range (0 = off, the ablation)",
          &P::projection},
         {"lambda", "proximal weight λ of the projection (inf = E(D(ẑ0)))", &P::lambda,
          Bound{0, true, INFINITY, true}},
         {"projection-every", "project every γ-th step", &P::projection_every, Bound{1}},
         {"projection-start", "share of the first steps without projection",
          &P::projection_start, Bound{0, false, 1}},
         {"cg-iters", "conjugate-gradient iterations of the proximal problem", &P::cg_iters}});
  }
};

// What one run carries from step to step: the tuned embedding and its optimiser.
struct PromptState {
  torch::Tensor text;
  std::unique_ptr<torch::optim::Adam> optimizer;
};

class P2l : public Solver {
 public:
  using Parameters = P2lParameters;
  using Solver::Solver;

 protected:
  StepFunction start(Networks& nets, const torch::Tensor& prompt,
                     Diagnostics& diagnostics) override {
    const auto p = parameters().as<Parameters>();
    const bool tune = p.prompt_tuning && p.prompt_iters > 0;
    const auto project_from = static_cast<int64_t>(std::ceil(p.projection_start * p.steps));

    // One embedding per sample (Adam is elementwise, so the samples are tuned apart).
    const int64_t samples = nets.problem().samples();
    auto state = std::make_shared<PromptState>();
    state->text = prompt.detach();
    if (tune && samples > 1 && prompt.size(0) == 1)
      state->text = state->text.repeat({samples, 1, 1});
    state->text.requires_grad_(tune);
    state->optimizer = std::make_unique<torch::optim::Adam>(
        std::vector<torch::Tensor>{state->text}, torch::optim::AdamOptions(p.prompt_lr));

    return [&nets, &diagnostics, p, tune, project_from, samples, state](StepContext& ctx) {
      auto& text = state->text;
      if (tune) {
        const auto z_t = ctx.z_t.detach();
        for (int64_t k = 0; k < p.prompt_iters; ++k) {
          auto prediction = predict(nets, z_t, ctx.t, ctx.alpha_bar_t, text);
          const auto losses = prediction.residual.pow(2);
          auto loss = losses.sum();
          ctx.check_finite(loss, "the prompt-tuning loss");
          // Data loss of each step before its K prompt iterations (and after them, below).
          if (k == 0) {
            const auto values = per_sample(losses);
            for (int64_t s = 0; s < samples; ++s)
              diagnostics[s]["prompt_loss_before"].push_back(values[s]);
          }
          {
            auto timer = nets.time(Activity::kOptimiser);
            state->optimizer->zero_grad();
          }
          nets.backward(loss, text, {Network::kUnet, Network::kDecoder});
          {
            auto timer = nets.time(Activity::kOptimiser);
            state->optimizer->step();
          }
          ctx.check_finite(text, "the text embedding");
        }
      }
      const bool projecting = p.projection && ctx.index >= project_from &&
                              (ctx.index - project_from) % p.projection_every == 0;
      auto projection = [&](const torch::Tensor&, const torch::Tensor& decoded) {
        return project_to_encoder_range(nets, decoded, p.lambda, p.cg_iters);
      };
      const auto conditioning = tune ? text.detach() : text;
      auto r = ldps_step(nets, ctx, conditioning, p.rho,
                         projecting ? EstimateTransform(projection) : EstimateTransform());
      if (tune)
        for (int64_t s = 0; s < samples; ++s)
          diagnostics[s]["prompt_loss_after"].push_back(r.data_residual[s] *
                                                        r.data_residual[s]);
      return r;
    };
  }
};

}  // namespace

Method p2l_method() { return method_row<P2l>("p2l"); }

}  // namespace p2l::solvers
