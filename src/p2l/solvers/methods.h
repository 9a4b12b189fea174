// The solvers p2l ships, one source file each; make_solver (registry.cpp) is the way in.
#pragma once

#include <memory>

#include "p2l/solvers/solver.h"

namespace p2l::solvers {

std::unique_ptr<Solver> make_ldps(Hyperparameters parameters);
std::unique_ptr<Solver> make_gml_dps(Hyperparameters parameters);
std::unique_ptr<Solver> make_psld(Hyperparameters parameters);
std::unique_ptr<Solver> make_resample(Hyperparameters parameters);
std::unique_ptr<Solver> make_p2l(Hyperparameters parameters);

}  // namespace p2l::solvers
