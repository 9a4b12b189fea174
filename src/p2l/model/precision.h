// The precisions the networks compute in: the text encoder's and UNet's (--precision) and the
// autoencoder's (--vae-precision, float32 unless asked: docs/bench.md). Whatever they are, the
// samplers and solvers keep their own arithmetic in float32 (latents, DDIM/Tweedie, the
// operators, norms, P2L's prompt and its Adam state): StableDiffusion's network calls take and
// return float32 and cast at the network's edge (stable_diffusion.h).
#pragma once

#include <torch/torch.h>

#include <string>

namespace p2l::model {

enum class Precision { kFloat32, kBFloat16, kFloat16 };

// "fp32" | "bf16" | "fp16"; throws p2l::Error naming `flag` for anything else.
Precision parse_precision(const std::string& name, const std::string& flag = "--precision");
std::string precision_name(Precision precision);  // "fp32", "bf16", "fp16"
torch::ScalarType scalar_type(Precision precision);
Precision precision_of(torch::ScalarType type);  // the inverse; float32 for anything else

// Throws p2l::Error naming `flag` when `device` cannot compute in `precision`: fp16 needs a CUDA
// device (LibTorch's CPU kernels lack or emulate most half-precision operations), bf16 needs a
// device on which a bf16 convolution runs.
void check_precision_supported(Precision precision, const torch::Device& device,
                               const std::string& flag = "--precision");

struct LoadOptions;
// Sets load.dtype from `precision` (the text encoder and UNet) and load.vae_dtype from
// `vae_precision` (the autoencoder), each parsed and checked on load.device; errors name `flag` or
// `vae_flag`.
void set_precisions(LoadOptions& load, const std::string& precision,
                    const std::string& vae_precision, const std::string& flag = "--precision",
                    const std::string& vae_flag = "--vae-precision");

}  // namespace p2l::model
