// LDPS: DPS in the latent space (SPEC §4). z_{t−1} = z' − ρ·∇_{z_t}‖y − A(D(ẑ0))‖.
#include "p2l/solvers/guidance.h"
#include "p2l/solvers/methods.h"

namespace p2l::solvers {
namespace {

struct LdpsParameters {
  int64_t steps = kSmallSteps;
  double eta = 0;
  double rho = kSmallStep;

  static LdpsParameters small() { return {}; }
  static LdpsParameters sd512() {
    LdpsParameters p;
    p.steps = kSdSteps;
    return p;
  }
  static std::vector<Field<LdpsParameters>> fields() {
    return with_ddim_fields<LdpsParameters>(
        {{"rho", "step size ρ of the data-fidelity gradient ∇‖y − A(D(ẑ0))‖",
          &LdpsParameters::rho}});
  }
};

class Ldps : public Solver {
 public:
  using Parameters = LdpsParameters;
  using Solver::Solver;

 protected:
  StepFunction start(Networks& nets, const torch::Tensor& text, Diagnostics&) override {
    const double rho = parameters().as<Parameters>().rho;
    return [&nets, text, rho](StepContext& ctx) { return ldps_step(nets, ctx, text, rho); };
  }
};

}  // namespace

Method ldps_method() { return method_row<Ldps>("ldps"); }

}  // namespace p2l::solvers
