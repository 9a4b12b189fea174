// PSLD (SPEC §4): the "glued" image x_g = Aᵀy + (I − AᵀA)D(ẑ0) keeps the measured part from y
// and the rest from the decoder; loss = ω‖y − A(D(ẑ0))‖ + γ‖ẑ0 − E(x_g)‖, z_{t−1} = z' − ∇loss.
// p2l uses the exact adjoint where the public code approximates it (SPEC §3).
#include "p2l/solvers/guidance.h"
#include "p2l/solvers/methods.h"

namespace p2l::solvers {
namespace {

class Psld : public Solver {
 public:
  using Solver::Solver;
  std::string name() const override { return "psld"; }

  Solution solve(const Problem& problem, const StepObserver& observer) override {
    NetworkCounts counts;
    Networks nets(problem, counts);
    const auto text = nets.text_embedding(problem.prompt);
    const double omega = parameters_.get("omega"), gamma = parameters_.get("gamma");
    const auto adjoint_y = nets.adjoint(problem.y);
    auto step = [&](StepContext& ctx) {
      return guided_step(
          nets, ctx, text,
          [&](Networks& n, const Prediction& p) {
            auto glued = adjoint_y + p.decoded - n.adjoint(n.measure(p.decoded));
            return omega * p.residual + gamma * sample_norms(p.z0 - n.encode(glued));
          },
          {Network::kUnet, Network::kDecoder, Network::kEncoder});
    };
    return run_ddim(problem, parameters_.get_int("steps"), parameters_.get("eta"), nets, counts,
                    step, observer);
  }
};

}  // namespace

std::unique_ptr<Solver> make_psld(Hyperparameters parameters) {
  return std::make_unique<Psld>(std::move(parameters));
}

}  // namespace p2l::solvers
