// Random inpainting: exactly ⌊fraction · H · W⌋ distinct pixels are missing, the same pixels in
// every channel (SPEC §3; DPS's 'random' mask draws its fraction from a range, p2l takes it as
// a parameter). The pixels come from a partial Fisher–Yates shuffle driven by prng.h.
#pragma once

#include "p2l/operators/inpainting.h"

namespace p2l::operators {

class RandomInpainting : public Inpainting {
 public:
  RandomInpainting(int64_t height, int64_t width, double fraction, uint64_t seed);

  double fraction() const { return fraction_; }
  uint64_t seed() const { return seed_; }

  std::string kind() const override { return "random_inpainting"; }
  nlohmann::json to_json() const override;
  // The stored mask when the JSON names one; otherwise regenerated from the seed.
  static std::unique_ptr<RandomInpainting> from_json(const nlohmann::json& j,
                                                     const NamedTensors& tensors);

 private:
  RandomInpainting(const torch::Tensor& mask, double fraction, uint64_t seed);

  double fraction_;
  uint64_t seed_;
};

// The [H, W] float64 mask (1 observed, 0 missing).
torch::Tensor random_pixel_mask(int64_t height, int64_t width, double fraction, uint64_t seed);

}  // namespace p2l::operators
