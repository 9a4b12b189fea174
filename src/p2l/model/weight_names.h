// Weight names between the two layouts. p2l's modules are registered under the original
// (CompVis) single-file names; this unit maps each to its diffusers name, knows each component's
// prefix in a single file and folder in a diffusers model, and the one shape that differs between
// the layouts (the VAE's attention: 1×1 convolutions in one, linear layers in the other).
#pragma once

#include <torch/torch.h>

#include <string>

#include "p2l/model/stable_diffusion.h"

namespace p2l::model {

enum class Component { TextEncoder, UNet, Vae };
// Its folder in a diffusers model: "text_encoder", "unet", "vae".
std::string component_name(Component component);
// Prefix of a component inside a single file, e.g. "model.diffusion_model.".
std::string single_file_prefix(Component component);

// Original-layout name (relative to the component, as registered in p2l's module) → diffusers
// name (relative to the component's folder file).
std::string diffusers_name(Component component, const std::string& original,
                           const ModelConfig& config);
// A stored diffusers name as today's diffusers writes it (older files name the VAE attention
// query/key/value/proj_attn).
std::string normalise_diffusers_name(Component component, const std::string& name);

// Whether an original-layout name is a weight of the VAE's mid-block attention.
bool is_vae_attention(const std::string& original);
// `stored` in the shape the module expects: itself, or the VAE attention's weights reshaped
// between [C, C] and [C, C, 1, 1]; undefined when the shapes do not fit.
torch::Tensor fit_stored_shape(const std::string& original, const torch::Tensor& stored,
                               at::IntArrayRef expected);

inline bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace p2l::model
