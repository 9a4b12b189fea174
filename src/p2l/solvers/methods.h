// The method table: one row per method, each row from its method's file. Adding a method is
// its file (parameter struct, solver, row function) plus a declaration here and a row in
// registry.cpp; the CLI, sweeps, eval and the tests iterate the table.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "p2l/solvers/solver.h"

namespace p2l::solvers {

struct Method {
  std::string name;  // the CLI name
  std::function<Hyperparameters(Scale scale)> defaults;
  std::function<std::unique_ptr<Solver>(Hyperparameters parameters)> make;
};

// Every method, in the order the CLI lists them.
const std::vector<Method>& methods();

Method p2l_method();
Method ldps_method();
Method gml_dps_method();
Method psld_method();
Method resample_method();

// Defaults shared by the parameter structs (docs/solvers.md has the sweeps behind the small
// model's). The papers' 1000 DDIM steps do not fit SD's schedule: 1000 training steps with
// steps_offset 1 have no t = 1000, so 999 is the most (diffusion/schedule.cpp). DPS-type guidance
// needs a few hundred steps to reach the data on the small model.
constexpr int64_t kSdSteps = 999;
constexpr int64_t kSmallSteps = 200;
// The small model's step size (ρ; PSLD's ω) for every method: on the six-style prior each
// method's best point of the sweep (docs/solvers.md, step sizes).
constexpr double kSmallStep = 1.0;

// A parameter struct's fields: --steps and --eta, which every method has, then its own.
template <class P>
std::vector<Field<P>> with_ddim_fields(std::vector<Field<P>> own) {
  std::vector<Field<P>> fields = {
      {"steps", "DDIM steps N", &P::steps, Bound{1}},
      {"eta", "DDIM η (0 = deterministic)", &P::eta},
  };
  fields.insert(fields.end(), own.begin(), own.end());
  return fields;
}

// The row of a solver class S whose S::Parameters has the named constructors sd512() and
// small().
template <class S>
Method method_row(const std::string& name) {
  using P = typename S::Parameters;
  return {name,
          [name](Scale scale) {
            return Hyperparameters(name, scale == Scale::kSd512 ? P::sd512() : P::small());
          },
          [](Hyperparameters parameters) -> std::unique_ptr<Solver> {
            return std::make_unique<S>(std::move(parameters));
          }};
}

}  // namespace p2l::solvers
