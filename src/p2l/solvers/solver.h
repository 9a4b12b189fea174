// The interface every posterior-sampling solver implements (SPEC §4): given the model, the
// forward operator and the measurement y, run N DDIM steps from seeded noise and return the
// restored latent and image, with the network evaluations spent.
#pragma once

#include <torch/torch.h>

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "p2l/error.h"
#include "p2l/diffusion/schedule.h"
#include "p2l/model/stable_diffusion.h"
#include "p2l/operators/measurement.h"
#include "p2l/operators/operator.h"
#include "p2l/solvers/hyperparameters.h"

namespace p2l::solvers {

// What a run spends its wall time on (bench/bench_methods). Backward passes are one activity:
// they run through several networks at once (see NetworkCounts for which).
enum class Activity {
  kTextEncoder,
  kUnetForward,
  kDecoderForward,
  kEncoderForward,
  kBackward,   // .backward() / autograd::grad through the networks and operator in the graph
  kOperator,   // A, Aᵀ and ‖y − A(x)‖
  kOptimiser,  // P2L's prompt Adam, ReSample's AdamW, the projection's conjugate gradient
};
inline constexpr size_t kActivityCount = 7;
static_assert(static_cast<size_t>(Activity::kOptimiser) + 1 == kActivityCount);
const char* activity_name(Activity activity);

// Seconds per activity, summed over a run; "other" (Tweedie, DDIM arithmetic, checks) is the
// wall time minus their sum.
struct ActivityTimes {
  std::array<double, kActivityCount> seconds{};
  // Wait for the GPU at both ends of a timed call, so that asynchronous kernels are charged to
  // the activity that launched them (slows a CUDA run slightly; no effect on the CPU).
  bool synchronize_cuda = false;
  double& operator[](Activity c) { return seconds[static_cast<size_t>(c)]; }
  double operator[](Activity c) const { return seconds[static_cast<size_t>(c)]; }
};

// What one restoration works on: y is [1, C, h, w] (or [B, …], one measurement per sample) on
// the model's device, in its arithmetic type. A batched solve runs one posterior sample per
// seed of `seeds` through every network call at once; each sample computes what its own
// unbatched solve with that seed computes (up to the order of float reductions).
struct Problem {
  model::StableDiffusion* model = nullptr;
  std::shared_ptr<const operators::Operator> op;
  torch::Tensor y;
  int64_t height = 0, width = 0;  // of the image to restore
  uint64_t seed = 0;              // one sample (when `seeds` is empty)
  std::vector<uint64_t> seeds;    // one sample per seed
  std::string prompt;  // initial text condition ("" = the null prompt)
  // One initial text condition per sample of `seeds` instead of `prompt` (empty: `prompt` for
  // every sample); each sample computes what its unbatched solve with its own prompt computes.
  std::vector<std::string> prompts;
  // When set, the solver adds its wall time per activity here; unset costs one branch a call.
  ActivityTimes* profile = nullptr;

  std::vector<uint64_t> sample_seeds() const {
    return seeds.empty() ? std::vector<uint64_t>{seed} : seeds;
  }
  int64_t samples() const { return seeds.empty() ? 1 : static_cast<int64_t>(seeds.size()); }
  // Sample i's initial text condition.
  const std::string& prompt_of(int64_t i) const { return prompts.empty() ? prompt : prompts[i]; }
};

// The problem of restoring `measurement` with `model`: y on the model's device in its arithmetic
// type, one sample drawn from `seed`, the null prompt.
Problem problem_of(model::StableDiffusion& model, const operators::Measurement& measurement,
                   uint64_t seed);

// Network evaluations (batch items count once each call).
struct NetworkCounts {
  int64_t unet_forward = 0, unet_backward = 0;
  int64_t encoder_forward = 0, encoder_backward = 0;
  int64_t decoder_forward = 0, decoder_backward = 0;
  int64_t operator_forward = 0;
  nlohmann::json to_json() const;
};

// After each step: step index (1-based), the total, the timestep, ‖y − A(D(ẑ0))‖ of that step
// (the mean over the samples of a batch), and D(ẑ0) (detached) for previews.
struct StepReport {
  int64_t step = 0, total = 0, timestep = 0;
  double data_residual = 0;
  torch::Tensor estimate;  // D(ẑ0), [B, 3, H, W] in [-1, 1] nominally
};
using StepObserver = std::function<void(const StepReport&)>;

struct Solution {
  torch::Tensor latent;  // z_0 [B, 4, h, w], a row per sample
  torch::Tensor image;   // D(z_0), unclamped
  NetworkCounts counts;  // of the whole batch: what each sample's own solve would count
  std::vector<std::vector<double>> data_residual;  // [sample][step], ‖y − A(D(ẑ0))‖
  std::vector<nlohmann::json> diagnostics;         // method-specific traces, one per sample

  int64_t samples() const { return static_cast<int64_t>(data_residual.size()); }
  // Sample i alone, as its unbatched solve returns it.
  Solution sample(int64_t i) const;
};

// A NaN/Inf in the latent, the text embedding or a loss: names the step and carries the last
// finite estimate D(ẑ0) so the caller can save it.
class DivergenceError : public Error {
 public:
  DivergenceError(const std::string& message, int64_t step, torch::Tensor last_finite)
      : Error(message), step_(step), last_finite_(std::move(last_finite)) {}
  int64_t step() const { return step_; }
  const torch::Tensor& last_finite_estimate() const { return last_finite_; }

 private:
  int64_t step_;
  torch::Tensor last_finite_;
};

class Networks;
struct StepContext;
struct StepResult;
using StepFunction = std::function<StepResult(StepContext&)>;
// Method-specific traces of a run, one JSON object per sample (Solution::diagnostics).
using Diagnostics = std::vector<nlohmann::json>;

// The timesteps a run visits, each with the one its step lands on (any negative one: the clean
// end of the schedule, ᾱ = 1 or ᾱ_0 as the scheduler's set_alpha_to_one says).
struct Timestep {
  int64_t t = 0, t_prev = -1;
};
using TimestepSchedule = std::vector<Timestep>;
// SD's DDIM spacing for N steps (diffusers' DDIMScheduler: "leading", steps_offset).
TimestepSchedule ddim_schedule(const diffusion::NoiseSchedule& schedule, int64_t steps);

// A method: its hyperparameters and its step. solve() owns what every method shares — the
// problem's checks, the networks and their counts, the text embedding, the DDIM loop over the
// schedule with its noise, divergence guard and reports — and calls the method's step.
class Solver {
 public:
  explicit Solver(Hyperparameters parameters) : parameters_(std::move(parameters)) {}
  virtual ~Solver() = default;
  const std::string& name() const { return parameters_.method(); }
  const Hyperparameters& parameters() const { return parameters_; }
  Hyperparameters& parameters() { return parameters_; }
  // The timesteps to visit instead of SD's DDIM spacing for --steps: t strictly decreasing and
  // within the model's schedule (checked when the run starts), t_prev below t. Sets "steps" to their count. Empty: the default.
  void set_schedule(TimestepSchedule schedule);
  // Throws p2l::Error for a problem the model cannot take (resolution, channels) and
  // DivergenceError when the run produces non-finite values.
  Solution solve(const Problem& problem, const StepObserver& observer = {});

 protected:
  // Sets up one run (after the shared set-up; `text` is the prompt's embedding, [1, 77, D], or
  // [B, 77, D] when the samples start from different prompts) and
  // returns its step. The step may keep state across the run and record per-sample traces in
  // `diagnostics`, which become the solution's.
  virtual StepFunction start(Networks& nets, const torch::Tensor& text,
                             Diagnostics& diagnostics) = 0;

 private:
  Hyperparameters parameters_;
  TimestepSchedule schedule_;
};

// The methods p2l ships, by CLI name, in the order of the method table (registry.cpp).
const std::vector<std::string>& method_names();

// Which defaults to start from: SD at 512² or p2l's small emoji model (64²).
enum class Scale { kSd512, kSmall };
Scale scale_for(const model::StableDiffusion& model);
Scale scale_for(const model::ModelConfig& config);  // before loading (model::describe_model)

// A solver with the defaults for (method, scale, task); task is an operator kind
// ("super_resolution", …) or "" for the method's general default. Throws p2l::Error naming
// an unknown method (and the known ones).
std::unique_ptr<Solver> make_solver(const std::string& method, Scale scale,
                                    const std::string& task = "");
// The default table alone (for help texts, sweeps and reports).
Hyperparameters default_hyperparameters(const std::string& method, Scale scale,
                                        const std::string& task = "");

}  // namespace p2l::solvers
