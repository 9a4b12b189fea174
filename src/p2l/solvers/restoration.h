// One restoration as `p2l restore`, the demo and the evaluation harness run it: a measurement,
// a method with its defaults for the model's scale and the task plus the user's overrides, and a
// report with every parameter, network evaluations, time, memory, the final data residual and
// (given the clean image) PSNR/SSIM of the result and of the naive reconstruction, and the fit
// check's reference residual and ratio (fit.h).
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

#include "p2l/operators/measurement.h"
#include "p2l/solvers/solver.h"

namespace p2l::solvers {

struct RestoreRequest {
  std::string method = "p2l";
  std::map<std::string, double> overrides;  // hyperparameter name → value
  uint64_t seed = 0;
  std::string prompt;
  torch::Tensor ground_truth;  // [1, 3, H, W] in [-1, 1], or undefined
  bool show_progress = true;
  StepObserver observer;  // called after each step (previews)
};

struct RestoreOutcome {
  Solution solution;
  torch::Tensor image;  // D(z0) clamped to [-1, 1]
  nlohmann::json report;
};

// The solver for a request on this model and measurement (defaults + overrides); throws
// p2l::Error naming an unknown method or a hyperparameter the method does not have.
std::unique_ptr<Solver> solver_for(const RestoreRequest& request,
                                   const model::StableDiffusion& model,
                                   const operators::Measurement& measurement);

// Runs it. Throws DivergenceError (with the last finite estimate) when the run diverges.
RestoreOutcome restore(model::StableDiffusion& model, const operators::Measurement& measurement,
                       const RestoreRequest& request);

// The clean image a measurement names (its source_image), or undefined when it names none or
// the file is gone; resized images are not guessed at.
torch::Tensor measurement_ground_truth(const operators::Measurement& measurement);

// Peak resident memory of this process in MiB.
double peak_memory_mib();

}  // namespace p2l::solvers
