// The method table and typed hyperparameters (solvers/methods.h, hyperparameters.h): every method
// is a row with valid defaults at both scales, values are checked when they are set, the loop
// takes a timestep schedule, and a method is one parameter struct plus one step (shown by a
// test-only method that runs through the same loop).
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>

#include "p2l/eval/inputs.h"
#include "p2l/io/image.h"
#include "p2l/solvers/guidance.h"
#include "p2l/solvers/methods.h"
#include "error_of.h"
#include "shipped_model.h"

namespace p2l::test {
namespace {

using solvers::Scale;

TEST(MethodTable, EveryMethodIsARowWithValidDefaultsAtBothScales) {
  std::vector<std::string> names;
  for (const auto& method : solvers::methods()) {
    names.push_back(method.name);
    for (const auto scale : {Scale::kSmall, Scale::kSd512}) {
      const auto defaults = method.defaults(scale);  // checked field by field when built
      EXPECT_EQ(defaults.method(), method.name);
      EXPECT_TRUE(defaults.has("steps") && defaults.has("eta")) << method.name;
      std::set<std::string> keys;
      const auto report = defaults.to_json();
      for (const auto& [key, value] : report.items()) keys.insert(key);
      std::set<std::string> fields;
      for (const auto& h : defaults.table()) fields.insert(h.name);
      EXPECT_EQ(keys, fields) << method.name;
      const auto solver = solvers::make_solver(method.name, scale);
      EXPECT_EQ(solver->name(), method.name);
      EXPECT_EQ(solver->parameters().to_json(), defaults.to_json());
    }
  }
  EXPECT_EQ(names, solvers::method_names());
  EXPECT_EQ(names.size(), std::set<std::string>(names.begin(), names.end()).size());
  // The SD-512 defaults are the papers' (SPEC §4), not the small model's.
  EXPECT_EQ(solvers::default_hyperparameters("p2l", Scale::kSd512).get_int("steps"), 999);
  EXPECT_EQ(solvers::default_hyperparameters("p2l", Scale::kSmall).get_int("steps"), 200);
  EXPECT_EQ(solvers::default_hyperparameters("resample", Scale::kSd512).get_int("pixel-iters"),
            2000);
}

TEST(MethodTable, AnUnknownMethodIsAnErrorNamingTheKnownOnes) {
  for (const auto& f : std::vector<std::function<void()>>{
           [] { solvers::make_solver("dps", Scale::kSmall); },
           [] { solvers::default_hyperparameters("dps", Scale::kSd512); }})
    EXPECT_EQ(error_of(f), "unknown method 'dps' (methods: p2l, ldps, gml-dps, psld, resample)");
}

TEST(Hyperparameters, ValuesAreCheckedWhenTheyAreSet) {
  auto p2l = solvers::default_hyperparameters("p2l", Scale::kSmall);
  auto refused = [&](const std::string& name, double value, const std::string& message) {
    const auto before = p2l.to_json();
    const auto error = error_of([&] { p2l.set(name, value, "p2l"); });
    EXPECT_NE(error.find(message), std::string::npos) << name << " = " << value << ": " << error;
    EXPECT_EQ(p2l.to_json(), before) << "a refused value must not be kept";
  };
  refused("projection", 7, "p2l: --projection is a switch: 1 (on) or 0 (off), got 7");
  refused("projection-every", 0, "--projection-every must be a whole number >= 1, got 0");
  refused("lambda", 0, "--lambda must be > 0, got 0");
  refused("lambda", -1, "--lambda must be > 0");
  refused("rho", INFINITY, "--rho must be finite");
  refused("rho", NAN, "--rho is NaN");
  refused("rho", -0.5, "--rho must be >= 0");
  refused("steps", 0, "--steps must be a whole number >= 1");
  refused("prompt-iters", 1.5, "--prompt-iters must be a whole number");
  refused("projection-start", 1.5, "--projection-start must be <= 1");
  refused("prompt-lr", 0, "--prompt-lr must be > 0");
  refused("omega", 1, "p2l: --omega is not a hyperparameter of p2l (its: steps, eta, rho,");

  p2l.set("projection", 0);
  p2l.set("lambda", INFINITY);
  p2l.set("prompt-iters", 3);
  EXPECT_EQ(p2l.get("projection"), 0);
  EXPECT_EQ(p2l.to_json()["projection"], 0);  // reports keep switches as 0/1
  EXPECT_EQ(p2l.to_json()["lambda"], "inf");
  EXPECT_EQ(p2l.to_json()["prompt-iters"], 3);
  EXPECT_EQ(solvers::parse_hyperparameter_value("false", "--projection"), 0);
  EXPECT_EQ(solvers::parse_hyperparameter_value("true", "--projection"), 1);

  auto resample = solvers::default_hyperparameters("resample", Scale::kSmall);
  EXPECT_NE(error_of([&] { resample.set("dc-every", 0); }).find("--dc-every must be a whole"),
            std::string::npos);
  EXPECT_NE(error_of([&] { resample.set("dc-skip", -0.1); }).find("--dc-skip must be >= 0"),
            std::string::npos);

  // Copies are values: setting one leaves the other as it was.
  auto copy = p2l;
  copy.set("rho", 0.25);
  EXPECT_EQ(copy.get("rho"), 0.25);
  EXPECT_EQ(p2l.get("rho"), solvers::kSmallStep);
}

solvers::Problem problem_on(model::StableDiffusion& sd, const operators::Measurement& m) {
  return solvers::problem_of(sd, m, 11);
}

operators::Measurement sr_measurement() {
  const auto images = eval::collect_images({}, (kModel / "test_images").string());
  return eval::measure_task(io::load_image(images.at(0)), "sr", 0.05, 3);
}

TEST(Solver, TheLoopTakesATimestepSchedule) {
  auto& sd = shipped();
  const auto m = sr_measurement();
  auto by_steps = solvers::make_solver("ldps", Scale::kSmall);
  by_steps->parameters().set("steps", 4);
  const auto a = by_steps->solve(problem_on(sd, m));

  // SD's DDIM spacing given explicitly is the same run.
  auto explicit_schedule = solvers::make_solver("ldps", Scale::kSmall);
  explicit_schedule->set_schedule(solvers::ddim_schedule(*sd.schedule, 4));
  EXPECT_TRUE(torch::equal(explicit_schedule->solve(problem_on(sd, m)).latent, a.latent));

  // Another schedule: its own count of steps, recorded as "steps".
  auto custom = solvers::make_solver("ldps", Scale::kSmall);
  custom->set_schedule({{900, 600}, {600, 250}, {250, -1}});
  EXPECT_EQ(custom->parameters().get_int("steps"), 3);
  std::vector<int64_t> visited;
  const auto c = custom->solve(problem_on(sd, m), [&](const solvers::StepReport& report) {
    visited.push_back(report.timestep);
  });
  EXPECT_EQ(visited, (std::vector<int64_t>{900, 600, 250}));
  EXPECT_EQ(c.data_residual.at(0).size(), 3u);
  EXPECT_FALSE(torch::equal(c.latent, a.latent));

  for (const solvers::TimestepSchedule& bad :
       {solvers::TimestepSchedule{{600, 300}, {700, 0}}, solvers::TimestepSchedule{{500, 500}},
        solvers::TimestepSchedule{{-1, -1}}})
    EXPECT_NE(error_of([&] { custom->set_schedule(bad); }).find("ldps: timestep"),
              std::string::npos);
  // A timestep beyond the model's schedule is an error when the run starts.
  custom->set_schedule({{5000, -1}});
  EXPECT_NE(error_of([&] { custom->solve(problem_on(sd, m)); }).find("outside the schedule"),
            std::string::npos);
}

// A method written for this test alone: unguided DDIM. Its parameter struct and its step are
// all it takes; the row function gives it defaults and a factory like the shipped methods.
struct DdimParameters {
  int64_t steps = 4;
  double eta = 0;
  static DdimParameters small() { return {}; }
  static DdimParameters sd512() { return {50, 0}; }
  static std::vector<solvers::Field<DdimParameters>> fields() {
    return solvers::with_ddim_fields<DdimParameters>({});
  }
};

class PlainDdim : public solvers::Solver {
 public:
  using Parameters = DdimParameters;
  using Solver::Solver;

 protected:
  solvers::StepFunction start(solvers::Networks& nets, const torch::Tensor& text,
                              solvers::Diagnostics& diagnostics) override {
    for (auto& d : diagnostics) d["unguided"] = true;
    return [&nets, text](solvers::StepContext& ctx) {
      const auto p = solvers::predict(nets, ctx.z_t, ctx.t, ctx.alpha_bar_t, text);
      solvers::StepResult r;
      r.z0 = p.z0.detach();
      r.eps = p.eps.detach();
      r.estimate = p.decoded.detach();
      r.data_residual = solvers::per_sample(p.residual);
      r.z_prev = ctx.ddim(r.z0, r.eps);
      return r;
    };
  }
};

TEST(MethodTable, AMethodIsOneParameterStructAndOneStep) {
  auto& sd = shipped();
  const auto m = sr_measurement();
  const auto row = solvers::method_row<PlainDdim>("ddim");
  EXPECT_EQ(row.defaults(Scale::kSd512).get_int("steps"), 50);
  auto ddim = row.make(row.defaults(Scale::kSmall));
  EXPECT_EQ(ddim->name(), "ddim");
  EXPECT_NE(error_of([&] { ddim->parameters().set("rho", 1); })
                .find("--rho is not a hyperparameter of ddim (its: steps, eta)"),
            std::string::npos);
  const auto plain = ddim->solve(problem_on(sd, m));
  EXPECT_EQ(plain.diagnostics.at(0)["unguided"], true);
  EXPECT_EQ(plain.counts.unet_forward, 4);
  EXPECT_EQ(plain.counts.unet_backward, 0);
  // LDPS with ρ = 0 is unguided DDIM: the same latent from the same loop.
  auto ldps = solvers::make_solver("ldps", Scale::kSmall);
  ldps->parameters().set("steps", 4);
  ldps->parameters().set("rho", 0);
  EXPECT_TRUE(torch::equal(ldps->solve(problem_on(sd, m)).latent, plain.latent));
}

}  // namespace
}  // namespace p2l::test
