// The emoji model p2l ships (models/emoji-64): the prior the tests sample, restore and train with.
#pragma once

#include <filesystem>

#include "p2l/model/checkpoint.h"

namespace p2l::test {

inline const std::filesystem::path kModel = std::filesystem::path(P2L_MODELS_DIR) / "emoji-64";

// Loaded once per test process.
inline model::StableDiffusion& shipped() {
  static model::StableDiffusion sd = model::load_stable_diffusion(kModel.string());
  return sd;
}

}  // namespace p2l::test
