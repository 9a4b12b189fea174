// Motion deblurring's forward model: the convolution of convolution.h (reflection padding,
// cross-correlation, as DPS) with either a random camera-shake kernel or a kernel the user
// supplies (PNG or safetensors; normalised to sum 1).
//
// The random kernel follows the recipe of the "motionblur" generator that DPS uses (NOTES §4):
// a random walk whose length, step sizes, turning angles and jitter grow with `intensity` in
// [0, 1], drawn on a 2K×2K canvas, blurred and down-sampled to K×K. It is p2l's own
// implementation driven by p2l's PRNG (prng.h): the same seed gives the same kernel on every
// machine, but not DPS's kernel for numpy's seed (that one needs numpy's and Pillow's exact
// code; bring it as a file instead). Differences from the reference: the line is rasterised by
// dense sampling instead of Pillow's line drawing, the blur is a true Gaussian instead of three
// box blurs, the 2× down-sampling is the antialiased bicubic of resizer.h instead of Lanczos,
// and the kernel is not quantised to 8 bits.
#pragma once

#include "p2l/operators/convolution.h"

namespace p2l::operators {

// A [size, size] float64 kernel summing to 1; size odd, intensity in [0, 1].
torch::Tensor random_motion_kernel(int64_t size, double intensity, uint64_t seed);

class MotionBlur : public Convolution {
 public:
  static std::unique_ptr<MotionBlur> random(int64_t size, double intensity, uint64_t seed);
  // A user kernel, normalised to sum 1; `source` (a file path) is recorded in the JSON.
  static std::unique_ptr<MotionBlur> from_kernel(const torch::Tensor& kernel,
                                                 const std::string& source);
  static std::unique_ptr<MotionBlur> from_file(const std::string& path);

  bool is_random() const { return random_; }

  std::string kind() const override { return "motion_blur"; }
  nlohmann::json to_json() const override;
  // The stored kernel when the JSON names one; otherwise regenerated from the seed (random
  // kernels) or re-read from the source file.
  static std::unique_ptr<MotionBlur> from_json(const nlohmann::json& j,
                                               const NamedTensors& tensors);

 private:
  MotionBlur(torch::Tensor kernel, bool random, double intensity, uint64_t seed,
             std::string source);

  bool random_;
  double intensity_;
  uint64_t seed_;
  std::string source_;
};

}  // namespace p2l::operators
