// Every solver's hyperparameters and their defaults, in one place (STYLE: "every algorithmic
// parameter is a named field with its default in one place"). The SD-512 defaults follow the
// public code where SPEC §4 gives them; the small-model defaults come from the sweep in
// docs/solvers.md.
#include <cmath>
#include <map>

#include "p2l/solvers/methods.h"

namespace p2l::solvers {
namespace {

using Table = std::vector<Hyperparameter>;

// The small model's main step size (ρ, PSLD's ω): per method, the grid point with the best PSNR
// averaged over the five tasks at N = 200 (docs/solvers.md, docs/sweeps): 1.6 for P2L, GML-DPS and
// PSLD (2.5 was worse for each); ReSample, whose hard data consistency does the heavy lifting, is
// best at 0.6. LDPS ties at 1.0 and 1.6 (0.002 dB apart); it has no gluing or goodness term to
// hold it near the encoder's range, and it collapsed at 1.6 on the UNet before offset noise, so
// it takes the tied point further from that edge.
constexpr double kSmallStep = 1.6;
constexpr double kSmallLdpsStep = 1.0;
constexpr double kSmallResampleStep = 0.6;

// The papers' 1000 DDIM steps do not fit SD's schedule: 1000 training steps with
// steps_offset 1 have no t = 1000, so 999 is the most (diffusion/schedule.cpp).
constexpr int64_t kSdSteps = 999;

Table common(Scale scale, int64_t sd_steps) {
  // The small model: DPS-type guidance needs a few hundred steps to reach the data (50 steps
  // stayed below the naive reconstruction on the blurs, docs/sweeps/n50); 200 cost 2–25 s.
  return {{"steps", scale == Scale::kSd512 ? double(sd_steps) : 200.0, "DDIM steps N", true},
          {"eta", 0.0, "DDIM η (0 = deterministic)"}};
}

Table append(Table a, const Table& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Table ldps_like(Scale scale, double small_rho) {
  return append(common(scale, kSdSteps),
                {{"rho", scale == Scale::kSd512 ? 1.0 : small_rho,
                  "step size ρ of the data-fidelity gradient ∇‖y − A(D(ẑ0))‖"}});
}

Table ldps(Scale scale) { return ldps_like(scale, kSmallLdpsStep); }

Table gml_dps(Scale scale) {
  return append(ldps_like(scale, kSmallStep),
                {{"gamma", 0.1, "weight γ of the goodness term ‖ẑ0 − E(D(ẑ0))‖"}});
}

Table psld(Scale scale) {
  return append(common(scale, kSdSteps),
                {{"omega", scale == Scale::kSd512 ? 1.0 : kSmallStep,
                  "weight ω of the measurement term ‖y − A(D(ẑ0))‖"},
                 {"gamma", 0.1, "weight γ of the gluing term ‖ẑ0 − E(x_g)‖"}});
}

Table resample(Scale scale) {
  const bool sd = scale == Scale::kSd512;
  return append(
      common(scale, 500),
      {{"rho", sd ? 1.0 : kSmallResampleStep, "step size ρ of the LDPS steps"},
       {"dc-every", 10.0, "hard data consistency every k-th step", true},
       {"dc-skip", 1.0 / 3, "share of the first steps without hard data consistency"},
       {"dc-latent-from", 2.0 / 3, "share of the steps after which it optimises the latent"},
       {"pixel-iters", sd ? 2000.0 : 200.0, "AdamW iterations of the pixel-space problem", true},
       {"pixel-lr", 1e-2, "learning rate of the pixel-space problem"},
       {"latent-iters", sd ? 500.0 : 50.0, "AdamW iterations of the latent-space problem", true},
       {"latent-lr", 5e-3, "learning rate of the latent-space problem"},
       {"dc-tolerance", 1e-6, "stop an optimisation when ‖y − Ax‖² falls below this"},
       {"resample-scale", 40.0, "scale of the resampling variance σ_t"}});
}

Table p2l(Scale scale) {
  return append(
      common(scale, kSdSteps),
      {{"rho", scale == Scale::kSd512 ? 1.0 : kSmallStep,
        "step size ρ of the data-consistency gradient (step 5)"},
       {"prompt-tuning", 1.0, "tune the text embedding (0 = off, the ablation)", true},
       {"prompt-iters", 1.0, "Adam iterations K on the text embedding per step", true},
       {"prompt-lr", scale == Scale::kSd512 ? 1e-3 : 1e-2, "Adam learning rate of the prompt"},
       {"projection", 1.0, "project ẑ0 onto the encoder's range (0 = off, the ablation)", true},
       {"lambda", 1.0, "proximal weight λ of the projection (inf = E(D(ẑ0)))"},
       // Every step of the last half pulled the small model's latents off (E∘D repeated 100
       // times; docs/solvers.md): every 10th step keeps the projection's benefit.
       {"projection-every", scale == Scale::kSd512 ? 1.0 : 10.0, "project every γ-th step", true},
       {"projection-start", 0.5, "share of the first steps without projection"},
       {"cg-iters", 5.0, "conjugate-gradient iterations of the proximal problem", true}});
}

// Per-task values of the small model's defaults: method → task → name → value. The sweep found
// the same best step size for every task, so there are none yet; a task that needs its own goes
// here.
const std::map<std::string, std::map<std::string, std::map<std::string, double>>>&
small_task_overrides() {
  static const std::map<std::string, std::map<std::string, std::map<std::string, double>>> o = {};
  return o;
}

}  // namespace

const std::vector<std::string>& method_names() {
  static const std::vector<std::string> names = {"p2l", "ldps", "gml-dps", "psld", "resample"};
  return names;
}

Scale scale_for(const model::StableDiffusion& model) {
  const int64_t size = model.config.unet.sample_size * model.config.vae.downsampling_factor();
  return size >= 256 ? Scale::kSd512 : Scale::kSmall;
}

Hyperparameters default_hyperparameters(const std::string& method, Scale scale,
                                        const std::string& task) {
  Table table;
  if (method == "ldps") table = ldps(scale);
  else if (method == "gml-dps") table = gml_dps(scale);
  else if (method == "psld") table = psld(scale);
  else if (method == "resample") table = resample(scale);
  else if (method == "p2l") table = p2l(scale);
  else {
    std::string names;
    for (const auto& n : method_names()) names += (names.empty() ? "" : ", ") + n;
    throw Error("unknown method '" + method + "' (methods: " + names + ")");
  }
  Hyperparameters h(table);
  if (scale == Scale::kSmall) {
    const auto& overrides = small_task_overrides();
    auto by_method = overrides.find(method);
    if (by_method != overrides.end()) {
      auto by_task = by_method->second.find(task);
      if (by_task != by_method->second.end())
        for (const auto& [name, value] : by_task->second) h.set(name, value, method);
    }
  }
  return h;
}

std::unique_ptr<Solver> make_solver(const std::string& method, Scale scale,
                                    const std::string& task) {
  auto h = default_hyperparameters(method, scale, task);
  if (method == "ldps") return make_ldps(std::move(h));
  if (method == "gml-dps") return make_gml_dps(std::move(h));
  if (method == "psld") return make_psld(std::move(h));
  if (method == "resample") return make_resample(std::move(h));
  return make_p2l(std::move(h));
}

}  // namespace p2l::solvers
