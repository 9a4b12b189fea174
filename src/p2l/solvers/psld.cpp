// PSLD (SPEC §4): the "glued" image x_g = Aᵀy + (I − AᵀA)D(ẑ0) keeps the measured part from y
// and the rest from the decoder; loss = ω‖y − A(D(ẑ0))‖ + γ‖ẑ0 − E(x_g)‖, z_{t−1} = z' − ∇loss.
// p2l uses the exact adjoint where the public code approximates it (SPEC §3).
#include "p2l/solvers/guidance.h"
#include "p2l/solvers/methods.h"

namespace p2l::solvers {
namespace {

struct PsldParameters {
  int64_t steps = kSmallSteps;
  double eta = 0;
  double omega = kSmallStep;
  double gamma = 0.1;

  static PsldParameters small() { return {}; }
  static PsldParameters sd512() {
    PsldParameters p;
    p.steps = kSdSteps;
    p.omega = 1.0;
    return p;
  }
  static std::vector<Field<PsldParameters>> fields() {
    return with_ddim_fields<PsldParameters>(
        {{"omega", "weight ω of the measurement term ‖y − A(D(ẑ0))‖", &PsldParameters::omega},
         {"gamma", "weight γ of the gluing term ‖ẑ0 − E(x_g)‖", &PsldParameters::gamma}});
  }
};

class Psld : public Solver {
 public:
  using Parameters = PsldParameters;
  using Solver::Solver;

 protected:
  StepFunction start(Networks& nets, const torch::Tensor& text, Diagnostics&) override {
    const auto& p = parameters().as<Parameters>();
    const double omega = p.omega, gamma = p.gamma;
    const auto adjoint_y = nets.adjoint(nets.y());
    return [&nets, text, omega, gamma, adjoint_y](StepContext& ctx) {
      return guided_step(
          nets, ctx, text,
          [&](Networks& n, const Prediction& p) {
            auto glued = adjoint_y + p.decoded - n.adjoint(n.measure(p.decoded));
            return omega * p.residual + gamma * sample_norms(p.z0 - n.encode(glued));
          },
          {Network::kUnet, Network::kDecoder, Network::kEncoder});
    };
  }
};

}  // namespace

Method psld_method() { return method_row<Psld>("psld"); }

}  // namespace p2l::solvers
