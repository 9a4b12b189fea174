// Box inpainting: a square hole in every channel (SPEC §3; DPS's 'box' mask). The hole is placed
// uniformly at random at least `margin` pixels from every edge (seeded with prng.h; DPS draws
// top ∈ [m, H − m − h) with numpy, p2l draws top ∈ [m, H − m − h] inclusive so both margins
// can be reached), or centred ((H − h) / 2 rounded down).
#pragma once

#include "p2l/operators/inpainting.h"

namespace p2l::operators {

class BoxInpainting : public Inpainting {
 public:
  // An explicit hole of box_size × box_size with its top-left corner at (top, left).
  BoxInpainting(int64_t height, int64_t width, int64_t box_size, int64_t top, int64_t left);
  static std::unique_ptr<BoxInpainting> random(int64_t height, int64_t width, int64_t box_size,
                                               int64_t margin, uint64_t seed);
  static std::unique_ptr<BoxInpainting> centered(int64_t height, int64_t width, int64_t box_size);

  int64_t box_size() const { return box_size_; }
  int64_t top() const { return top_; }
  int64_t left() const { return left_; }

  std::string kind() const override { return "box_inpainting"; }
  nlohmann::json to_json() const override;
  // The stored mask when the JSON names one; otherwise rebuilt from the box geometry.
  static std::unique_ptr<BoxInpainting> from_json(const nlohmann::json& j,
                                                  const NamedTensors& tensors);

 private:
  BoxInpainting(const torch::Tensor& mask, int64_t box_size, int64_t top, int64_t left);

  int64_t box_size_, top_, left_;
  // How the position was chosen, for the JSON: "random" (with margin, seed), "centered", "given".
  std::string placement_ = "given";
  int64_t margin_ = 0;
  uint64_t seed_ = 0;
};

}  // namespace p2l::operators
