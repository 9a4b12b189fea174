// One restoration as `p2l restore` and the evaluation harness run it: a measurement, a method
// with its defaults for the model's scale and the task plus the user's overrides, and a typed
// report — every parameter, network evaluations, time, memory, the final data residual and
// (given the clean image) PSNR/SSIM of the result and of the naive reconstruction, and the fit
// check's reference residual and ratio (fit.h). restore_files() is `p2l restore` itself: files
// in, the image, the report and (for several samples) the posterior's spread out.
#pragma once

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "p2l/operators/measurement.h"
#include "p2l/solvers/solver.h"

namespace p2l::pipelines {

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
  solvers::StepObserver observer;  // called after each step (previews)
};

struct ImageQuality {
  double psnr = 0, ssim = 0;
};

// One posterior sample of a run: its seed, final residual, residual per step and the method's
// traces (P2L's prompt loss, …), and its quality when the clean image is known.
struct SampleReport {
  uint64_t seed = 0;
  double data_residual = 0;
  std::vector<double> data_residual_per_step;
  nlohmann::json diagnostics;  // empty object: none
  std::optional<ImageQuality> quality;
};

// The files `p2l restore` wrote (absolute paths); empty for a restoration kept in memory.
struct RestorationFiles {
  std::string measurement, output;
  std::vector<std::string> sample_images;
  std::string std_image, montage, tensors;
  double std_image_white = 0;  // the standard deviation drawn white in std_image
};

// What a restoration reports. to_json() is the report `p2l restore` writes (docs/restore.md);
// a single sample's traces sit at the top level, several samples' under "per_sample".
struct RestorationReport {
  std::string method, model, task;
  nlohmann::json op, noise;  // the measurement's operator and noise, as it describes them
  uint64_t measurement_seed = 0, seed = 0;
  std::string prompt;
  solvers::Hyperparameters parameters;
  solvers::NetworkCounts counts;
  double seconds = 0, seconds_per_step = 0, peak_memory_mib = 0;
  std::string device, precision, vae_precision;
  int64_t batch = 0;         // measurements that shared the solve (restore_batch); 0: its own solve
  double data_residual = 0;  // ‖y − A(x)‖ of the image (the samples' mean for several)
  std::vector<SampleReport> samples;
  double spread_mean = 0;  // several samples: the mean per-pixel standard deviation
  // With the clean image.
  std::optional<ImageQuality> quality, naive_quality;
  std::optional<double> reference_residual, fit_ratio;
  std::string status;  // "finished" once written by restore_files
  RestorationFiles files;

  bool did_not_fit() const;  // fit_ratio above kMisfitRatio (fit.h)
  nlohmann::json to_json() const;
};

// One sample: the image and report fields as for a single restoration. Several: `image` is the
// samples' mean (the posterior-mean estimate the report's PSNR/SSIM/residual describe), with
// each sample, and the per-pixel standard deviation over them (the posterior's spread).
struct RestoreOutcome {
  solvers::Solution solution;
  torch::Tensor image;    // D(z0) clamped to [-1, 1], or the mean of the clamped samples
  torch::Tensor samples;  // [N, 3, H, W] clamped (N = 1: the image)
  torch::Tensor spread;   // [1, 3, H, W] per-pixel standard deviation (N > 1)
  RestorationReport report;
};

// The solver for a request on this model and measurement (defaults + overrides); throws
// p2l::Error naming an unknown method or a hyperparameter the method does not have.
std::unique_ptr<solvers::Solver> solver_for(const RestoreRequest& request,
                                            const model::StableDiffusion& model,
                                            const operators::Measurement& measurement);

// Runs it. Throws DivergenceError (with the last finite estimate) when the run diverges.
RestoreOutcome restore(model::StableDiffusion& model, const operators::Measurement& measurement,
                       const RestoreRequest& request);

// Several measurements of one task (each with its own operator), one sample each with seeds[i],
// in one batched solve (`p2l eval --batch`). Each outcome and report is what restore() gives
// that measurement alone (up to the order of float reductions), without the clean-image metrics;
// its "seconds" is the batch's time shared out and "batch" says how many shared it. `prompts`,
// when given, holds each measurement's initial text condition in place of request.prompt.
// Throws DivergenceError when any sample diverges: rerun them one by one to see which.
std::vector<RestoreOutcome> restore_batch(model::StableDiffusion& model,
                                          const std::vector<operators::Measurement>& measurements,
                                          const RestoreRequest& request,
                                          const std::vector<uint64_t>& seeds,
                                          const std::vector<std::string>& prompts = {});

// `p2l restore`'s files: the measurement (from `p2l degrade`), the restored image OUT.png, the
// report (default OUT.json), the clean image (default: the measurement's source image), and
// D(ẑ0) every `preview_every` steps into OUT.preview/.
struct RestoreFiles {
  std::string measurement;
  std::string output = "restored.png";
  std::string report;
  std::string ground_truth;
  int64_t preview_every = 0;
  std::string report_path() const;
};

// Throws p2l::Error, before any work, for an output that cannot be written or one that would
// overwrite the measurement.
void check_restore_files(const RestoreFiles& files);

// Restores the measurement (loaded from files.measurement) and writes OUT.png and the report;
// several samples also write OUT.sample-I.png, OUT.std.png (the per-pixel spread), OUT.montage.png
// and OUT.safetensors (samples, mean, std). A diverged run writes its report (status "diverged")
// and the last finite estimate (OUT.last-finite.png), then throws p2l::Error saying so and naming
// the report.
RestorationReport restore_files(model::StableDiffusion& model,
                                const operators::Measurement& measurement,
                                const RestoreFiles& files, RestoreRequest request);

// The clean image a measurement names (its source_image), or undefined when it names none or
// the file is gone; resized images are not guessed at.
torch::Tensor measurement_ground_truth(const operators::Measurement& measurement);

// Peak resident memory of this process in MiB.
double peak_memory_mib();

}  // namespace p2l::pipelines
