// GML-DPS (SPEC §4): LDPS plus a "goodness" term that pulls ẑ0 towards the encoder's range:
// z_{t−1} = z' − ∇_{z_t}(ρ‖y − A(D(ẑ0))‖ + γ‖ẑ0 − E(D(ẑ0))‖).
#include "p2l/solvers/guidance.h"
#include "p2l/solvers/methods.h"

namespace p2l::solvers {
namespace {

class GmlDps : public Solver {
 public:
  using Solver::Solver;
  std::string name() const override { return "gml-dps"; }

  Solution solve(const Problem& problem, const StepObserver& observer) override {
    NetworkCounts counts;
    Networks nets(problem, counts);
    const auto text = nets.text_embedding(problem.prompt);
    const double rho = parameters_.get("rho"), gamma = parameters_.get("gamma");
    auto step = [&](StepContext& ctx) {
      return guided_step(
          nets, ctx, text,
          [&](Networks& n, const Prediction& p) {
            return rho * p.residual + gamma * sample_norms(p.z0 - n.encode(p.decoded));
          },
          {Network::kUnet, Network::kDecoder, Network::kEncoder});
    };
    return run_ddim(problem, parameters_.get_int("steps"), parameters_.get("eta"), nets, counts,
                    step, observer);
  }
};

}  // namespace

std::unique_ptr<Solver> make_gml_dps(Hyperparameters parameters) {
  return std::make_unique<GmlDps>(std::move(parameters));
}

}  // namespace p2l::solvers
