// The pieces the methods' steps share (SPEC §4): the networks with evaluation counts, the Tweedie
// estimate with gradients tracked from z_t, the data-fidelity residual through the decoder, the
// gradient of a loss with respect to z_t, the proximal projection onto the encoder's range, and
// the guided DDIM step. The loop itself is Solver::solve (solver.cpp).
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <initializer_list>
#include <string>

#include "p2l/solvers/solver.h"

namespace p2l::solvers {

enum class Network { kUnet, kEncoder, kDecoder };

// The model and operator as the solvers call them; every call is counted, and timed by
// activity when the problem carries a profile.
class Networks {
 public:
  Networks(const Problem& problem, NetworkCounts& counts);

  // The problem's initial text condition, no gradient: [1, 77, D] when every sample starts from
  // the same prompt, else one row per sample.
  torch::Tensor text_embedding();
  torch::Tensor eps(const torch::Tensor& z_t, int64_t t, const torch::Tensor& text);
  torch::Tensor decode(const torch::Tensor& z);  // D(z) = decoder(z / s)
  torch::Tensor encode(const torch::Tensor& x);  // E(x) = s · posterior mean
  torch::Tensor measure(const torch::Tensor& x);  // A(x)
  torch::Tensor adjoint(const torch::Tensor& v);  // Aᵀv
  // ‖y − A(x)‖ (plain L2 norm, SPEC §2) of each sample: [B].
  torch::Tensor residual_norm(const torch::Tensor& x);
  // Records one backward pass through each network that is in a loss's graph.
  void count_backward(std::initializer_list<Network> through);
  // ∂loss/∂leaf added to each leaf's grad() (what an optimiser steps on), graph freed; counted
  // and timed as one backward pass through `through`.
  void backward(const torch::Tensor& loss, torch::TensorList leaves,
                std::initializer_list<Network> through);
  // ∂loss/∂input returned (graph freed); counted and timed likewise.
  torch::Tensor gradient(const torch::Tensor& loss, const torch::Tensor& input,
                         std::initializer_list<Network> through);

  // Adds the wall time of its scope to one activity of the problem's profile; does nothing
  // (not even read the clock) when there is none.
  class Timer {
   public:
    Timer(ActivityTimes* profile, Activity activity);
    ~Timer();
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;

   private:
    ActivityTimes* profile_;
    Activity activity_;
    std::chrono::steady_clock::time_point start_;
  };
  Timer time(Activity activity) { return Timer(problem_.profile, activity); }

  const Problem& problem() const { return problem_; }
  const operators::Operator& op() const { return *problem_.op; }
  const torch::Tensor& y() const { return problem_.y; }

 private:
  const Problem& problem_;
  model::StableDiffusion& model_;
  NetworkCounts& counts_;
};

// ε(z_t, t, C) and ẑ0 from a z_t that requires grad (or not), with D(ẑ0) and ‖y − A(D(ẑ0))‖.
struct Prediction {
  torch::Tensor z_t, eps, z0, decoded, residual;
};
Prediction predict(Networks& nets, const torch::Tensor& z_t, int64_t t, float alpha_bar_t,
                   const torch::Tensor& text);

// ∇_{z_t} loss (the graph is freed), counting a backward pass through `through`.
torch::Tensor latent_gradient(Networks& nets, const torch::Tensor& loss, const torch::Tensor& z_t,
                              std::initializer_list<Network> through);

// P2L's step 3: x* = argmin ‖y − Ax‖² + λ‖x − D(ẑ0)‖² (CG from D(ẑ0), or the closed form for
// masks), then E(x*). λ = ∞ is the pure range projection E(D(ẑ0)). No gradient.
torch::Tensor project_to_encoder_range(Networks& nets, const torch::Tensor& decoded, double lambda,
                                       int64_t cg_iters);

// The L2 norm of each sample of a batch, [B] (a loss sums them: the samples' gradients stay
// apart). One sample takes the norm of the whole tensor, the reduction of the unbatched code.
torch::Tensor sample_norms(const torch::Tensor& x);
// A [B] tensor's values, on the CPU.
std::vector<double> per_sample(const torch::Tensor& values);

// One step of the DDIM loop as a solver sees it.
struct StepContext {
  int64_t index = 0;  // 0-based
  int64_t total = 0;
  int64_t t = 0, t_prev = 0;
  float alpha_bar_t = 0, alpha_bar_prev = 0;
  double eta = 0;
  torch::Tensor z_t;
  int64_t samples = 1;
  // Fresh N(0, I) noise of z_t's shape, drawn from each sample's seed (deterministic per step).
  std::function<torch::Tensor()> draw_noise;
  // Throws DivergenceError naming this step unless every value of `x` is finite.
  std::function<void(const torch::Tensor& x, const std::string& what)> check_finite;

  // The deterministic DDIM update with ẑ0 and ε (plus σξ when η > 0).
  torch::Tensor ddim(const torch::Tensor& z0, const torch::Tensor& eps) const;
};

struct StepResult {
  torch::Tensor z_prev;                // z_{t_prev}
  std::vector<double> data_residual;   // ‖y − A(D(ẑ0))‖ of this step, per sample
  torch::Tensor estimate;    // D(ẑ0), detached
  torch::Tensor z0, eps;     // ẑ0 and ε of this step, detached
};

// The step every method builds on: ε, ẑ0, D(ẑ0) and ‖y − A(D(ẑ0))‖ with gradients from z_t
// under the text embedding; the DDIM step to z' from `z0_for_ddim(ẑ0, D(ẑ0))` (ẑ0 itself when
// empty; P2L projects here); then z' − ∇_{z_t} loss(prediction). `through` names the networks
// in the loss's graph (for the evaluation counts).
using EstimateTransform =
    std::function<torch::Tensor(const torch::Tensor& z0, const torch::Tensor& decoded)>;
using GuidanceLoss = std::function<torch::Tensor(Networks& nets, const Prediction& p)>;
StepResult guided_step(Networks& nets, StepContext& ctx, const torch::Tensor& text,
                       const GuidanceLoss& loss, std::initializer_list<Network> through,
                       const EstimateTransform& z0_for_ddim = {});

// LDPS's step: the loss ρ‖y − A(D(ẑ0))‖ (P2L and ReSample reuse it).
StepResult ldps_step(Networks& nets, StepContext& ctx, const torch::Tensor& text, double rho,
                     const EstimateTransform& z0_for_ddim = {});

}  // namespace p2l::solvers
