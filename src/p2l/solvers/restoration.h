// One restoration as `p2l restore`, the demo and the evaluation harness run it: a measurement,
// a method with its defaults for the model's scale and the task plus the user's overrides, and a
// report with every parameter, network evaluations, time, memory, the final data residual and
// (given the clean image) PSNR/SSIM of the result and of the naive reconstruction, and the fit
// check's reference residual and ratio (fit.h).
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "p2l/operators/measurement.h"
#include "p2l/solvers/solver.h"

namespace p2l::solvers {

struct RestoreRequest {
  std::string method = "p2l";
  std::map<std::string, double> overrides;  // hyperparameter name → value
  uint64_t seed = 0;
  // Posterior samples drawn in one batched solve; sample i runs with seed + 2i (its step noise
  // with seed + 2i + 1), so sample 0 is the run of `seed` alone.
  int64_t samples = 1;
  std::string prompt;
  torch::Tensor ground_truth;  // [1, 3, H, W] in [-1, 1], or undefined
  bool show_progress = true;
  StepObserver observer;  // called after each step (previews)
};

// One sample: the image and report fields as for a single restoration. Several: `image` is the
// samples' mean (the posterior-mean estimate the report's PSNR/SSIM/residual describe), with
// each sample, and the per-pixel standard deviation over them (the posterior's spread), and a
// "per_sample" list in the report.
struct RestoreOutcome {
  Solution solution;
  torch::Tensor image;    // D(z0) clamped to [-1, 1], or the mean of the clamped samples
  torch::Tensor samples;  // [N, 3, H, W] clamped (N = 1: the image)
  torch::Tensor spread;   // [1, 3, H, W] per-pixel standard deviation (N > 1)
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

// Several measurements of one task (each with its own operator), one sample each with seeds[i],
// in one batched solve (`p2l eval --batch`). Each outcome and report is what restore() gives
// that measurement alone (up to the order of float reductions), without the clean-image metrics;
// its "seconds" is the batch's time shared out and "batch" says how many shared it. Throws
// DivergenceError when any sample diverges: rerun them one by one to see which.
std::vector<RestoreOutcome> restore_batch(model::StableDiffusion& model,
                                          const std::vector<operators::Measurement>& measurements,
                                          const RestoreRequest& request,
                                          const std::vector<uint64_t>& seeds);

// The clean image a measurement names (its source_image), or undefined when it names none or
// the file is gone; resized images are not guessed at.
torch::Tensor measurement_ground_truth(const operators::Measurement& measurement);

// Peak resident memory of this process in MiB.
double peak_memory_mib();

}  // namespace p2l::solvers
