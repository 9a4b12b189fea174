// LDPS: DPS in the latent space (SPEC §4). z_{t−1} = z' − ρ·∇_{z_t}‖y − A(D(ẑ0))‖.
#include "p2l/solvers/guidance.h"
#include "p2l/solvers/methods.h"

namespace p2l::solvers {
namespace {

class Ldps : public Solver {
 public:
  using Solver::Solver;
  std::string name() const override { return "ldps"; }

  Solution solve(const Problem& problem, const StepObserver& observer) override {
    NetworkCounts counts;
    Networks nets(problem, counts);
    const auto text = nets.text_embedding(problem.prompt);
    const double rho = parameters_.get("rho");
    return run_ddim(problem, parameters_.get_int("steps"), parameters_.get("eta"), nets, counts,
                    [&](StepContext& ctx) { return ldps_step(nets, ctx, text, rho); }, observer);
  }
};

}  // namespace

std::unique_ptr<Solver> make_ldps(Hyperparameters parameters) {
  return std::make_unique<Ldps>(std::move(parameters));
}

}  // namespace p2l::solvers
