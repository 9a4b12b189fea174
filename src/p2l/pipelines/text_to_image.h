// Text-to-image sampling with DDIM and classifier-free guidance, as diffusers'
// StableDiffusionPipeline does it for SD v1: a pipeline over the model and the diffusion
// schedule, beside restoration (which goes through solvers/).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>

#include "p2l/model/stable_diffusion.h"

namespace p2l::pipelines {

struct TextToImageOptions {
  std::string prompt;
  std::string negative_prompt;  // "" = the unconditional prompt
  int64_t steps = 50;
  double cfg_scale = 7.5;  // 1 disables guidance (one UNet call per step)
  double eta = 0.0;
  uint64_t seed = 0;
  int64_t width = 512;
  int64_t height = 512;
};

struct TextToImageResult {
  torch::Tensor latents;          // final latents [1, C, h, w]
  torch::Tensor latents_per_step; // [steps, 1, C, h, w]
  torch::Tensor decoded;          // D(latents / s), unclamped, [-1, 1] nominally
  torch::Tensor image;            // clamp(decoded / 2 + 0.5, 0, 1)
};

// Called after each step with (steps done, total).
using StepCallback = std::function<void(int64_t done, int64_t total)>;

// Samples from text states: `cond` and `uncond` are [1, S, D]; `init_latents` [1, C, h, w]
// (N(0, 1), DDIM's initial noise scale is 1). `noise_seed` drives η > 0 noise.
TextToImageResult sample_ddim(model::StableDiffusion& model, const torch::Tensor& cond,
                              const torch::Tensor& uncond, const torch::Tensor& init_latents,
                              int64_t steps, double cfg_scale, double eta = 0.0,
                              uint64_t noise_seed = 0, const StepCallback& on_step = {});

// Prompt → image. Initial latents are drawn from the seed on the CPU, so the same seed gives
// the same image on every device.
TextToImageResult text_to_image(model::StableDiffusion& model, const TextToImageOptions& options,
                                const StepCallback& on_step = {});

}  // namespace p2l::pipelines
