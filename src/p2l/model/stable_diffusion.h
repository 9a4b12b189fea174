// The bundle of SD v1 components that the samplers and solvers work with: tokenizer, text
// encoder, UNet, autoencoder and noise schedule, loaded from either checkpoint layout.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "p2l/diffusion/schedule.h"
#include "p2l/model/clip_text.h"
#include "p2l/model/tokenizer.h"
#include "p2l/model/unet.h"
#include "p2l/model/vae.h"

namespace p2l::model {

struct ModelConfig {
  ClipTextConfig text = ClipTextConfig::sd_v1();
  UNetConfig unet = UNetConfig::sd_v1();
  VaeConfig vae = VaeConfig::sd_v1();
  diffusion::ScheduleConfig schedule = diffusion::ScheduleConfig::sd_v1();

  static ModelConfig sd_v1() { return ModelConfig{}; }
};

enum class Layout { Diffusers, SingleFile };
std::string layout_name(Layout layout);

struct StableDiffusion {
  ModelConfig config;
  std::shared_ptr<const ClipTokenizer> tokenizer;
  ClipTextModel text_encoder{nullptr};
  UNet unet{nullptr};
  AutoencoderKL vae{nullptr};
  std::shared_ptr<const diffusion::NoiseSchedule> schedule;

  // Where it came from (for `p2l info` and run reports).
  Layout layout = Layout::Diffusers;
  std::string source;
  std::string storage_dtype;  // e.g. "F32", "F16", or "F16+F32" when mixed

  // Freshly initialised (random) modules for a configuration, their weights in `dtype` (the
  // autoencoder's in `vae_dtype`, default `dtype`); no tokenizer.
  static StableDiffusion create(const ModelConfig& config, torch::ScalarType dtype = torch::kFloat,
                                std::optional<torch::ScalarType> vae_dtype = std::nullopt);

  torch::Device device() const;
  // The type the text encoder's and UNet's weights hold and compute in (--precision).
  torch::ScalarType dtype() const;
  // The autoencoder's (--vae-precision): float32 beside bf16 networks by default.
  torch::ScalarType vae_dtype() const;
  // The type of everything around the networks (latents, images, measurements): float32, or
  // float64 for a model cast to float64 (the finite-difference tests).
  torch::ScalarType arithmetic_dtype() const;
  // The autoencoder to `vae_dtype` (default `dtype`), the other networks to `dtype`.
  void to(torch::Device device, torch::ScalarType dtype,
          std::optional<torch::ScalarType> vae_dtype = std::nullopt);
  void eval();

  // The networks as the samplers and solvers call them: arithmetic_dtype() in and out on the
  // model's device, computed in dtype() (the autoencoder in vae_dtype()). The casts are differentiable, so a gradient taken through a
  // call comes back in float32 too; in float32 they are no-ops.
  // Token ids → text states [B, 77, D] (SD v1: the last hidden state after the final norm).
  torch::Tensor encode_tokens(const torch::Tensor& ids);
  // Text → text states; needs the tokenizer.
  torch::Tensor encode_prompts(const std::vector<std::string>& prompts);
  // ε(z_t, t, text): z_t [B, 4, h, w], timesteps [B] (or [1]), text [B, 77, D].
  torch::Tensor predict_noise(const torch::Tensor& z_t, const torch::Tensor& timesteps,
                              const torch::Tensor& text);
  torch::Tensor decode(const torch::Tensor& z);  // D(z) = decoder(z / s)
  torch::Tensor encode(const torch::Tensor& x);  // E(x) = s · posterior mean
};

// Stores 4-D weights channels-last (NHWC). With channels-last inputs, LibTorch's CPU convolutions
// take the oneDNN path, several times faster than the default layout on this machine's CPUs.
void use_channels_last(torch::nn::Module& module);

// Number of scalar parameters of a module.
int64_t parameter_count(const torch::nn::Module& module);

}  // namespace p2l::model
