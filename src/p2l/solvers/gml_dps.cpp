// GML-DPS (SPEC §4): LDPS plus a "goodness" term that pulls ẑ0 towards the encoder's range:
// z_{t−1} = z' − ∇_{z_t}(ρ‖y − A(D(ẑ0))‖ + γ‖ẑ0 − E(D(ẑ0))‖).
#include "p2l/solvers/guidance.h"
#include "p2l/solvers/methods.h"

namespace p2l::solvers {
namespace {

struct GmlDpsParameters {
  int64_t steps = kSmallSteps;
  double eta = 0;
  double rho = kSmallStep;
  double gamma = 0.1;

  static GmlDpsParameters small() { return {}; }
  static GmlDpsParameters sd512() {
    GmlDpsParameters p;
    p.steps = kSdSteps;
    p.rho = 1.0;
    return p;
  }
  static std::vector<Field<GmlDpsParameters>> fields() {
    return with_ddim_fields<GmlDpsParameters>(
        {{"rho", "step size ρ of the data-fidelity gradient ∇‖y − A(D(ẑ0))‖",
          &GmlDpsParameters::rho},
         {"gamma", "weight γ of the goodness term ‖ẑ0 − E(D(ẑ0))‖", &GmlDpsParameters::gamma}});
  }
};

class GmlDps : public Solver {
 public:
  using Parameters = GmlDpsParameters;
  using Solver::Solver;

 protected:
  StepFunction start(Networks& nets, const torch::Tensor& text, Diagnostics&) override {
    const auto& p = parameters().as<Parameters>();
    const double rho = p.rho, gamma = p.gamma;
    return [&nets, text, rho, gamma](StepContext& ctx) {
      return guided_step(
          nets, ctx, text,
          [&](Networks& n, const Prediction& p) {
            return rho * p.residual + gamma * sample_norms(p.z0 - n.encode(p.decoded));
          },
          {Network::kUnet, Network::kDecoder, Network::kEncoder});
    };
  }
};

}  // namespace

Method gml_dps_method() { return method_row<GmlDps>("gml-dps"); }

}  // namespace p2l::solvers
