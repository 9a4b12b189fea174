// The restoration tasks of SPEC §3, their parameters and the presets p2l ships.
//
// Preset "512" (DPS/PSLD at 256² and 512²): SR ×8 (the paper's; ×4 also common), Gaussian
// 61×61 σ = 3, motion 61×61 intensity 0.5, box 128 with a 16-pixel margin, random 70 %.
// Preset "64" (p2l's small 64² models), scaled with the image where that keeps the task
// meaningful:
//   SR ×4        ×8 would leave 8×8 pixels, less than the latent of an f = 8 VAE;
//   Gaussian 9×9 σ = 1   σ·64/512 = 0.375 would hardly blur; σ = 1 over 64 px is a blur as
//                visible as σ = 3 at 256², and 9 = 2·⌈4σ⌉ + 1 holds the whole truncated kernel
//                (scipy's truncate 4, as the 61×61 does for σ = 3);
//   motion 9×9 intensity 0.5   kernel size scaled as the Gaussian's (61/512 ≈ 9/64);
//   box 16, margin 2  128/512 and 16/512 of the side, ×64;
//   random 70 %  a fraction, independent of size.
// Auto choice: images whose shorter side is ≥ 256 get "512", smaller ones "64".
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "p2l/operators/operator.h"

namespace p2l::operators {

enum class Task {
  kSuperResolution,
  kGaussianBlur,
  kMotionBlur,
  kBoxInpainting,
  kRandomInpainting,
  kInpainting,  // a user-supplied mask
  kDenoising,
};

// CLI names: sr, gauss-blur, motion-blur, box-inpaint, random-inpaint, inpaint, denoise.
Task parse_task(const std::string& name);  // throws p2l::Error listing the names
std::string task_name(Task task);
std::string task_names();  // "sr, gauss-blur, …" for help texts

enum class Preset { k512, k64 };
Preset parse_preset(const std::string& name);  // "512" or "64"; throws p2l::Error
std::string preset_name(Preset preset);
Preset preset_for_image(int64_t height, int64_t width);

// Every task parameter; the defaults are preset 512.
struct TaskParams {
  int64_t sr_factor = 8;
  int64_t gaussian_kernel_size = 61;
  double gaussian_sigma = 3.0;
  int64_t motion_kernel_size = 61;
  double motion_intensity = 0.5;
  std::string motion_kernel_file;  // a user kernel (PNG / safetensors) instead of a random one
  int64_t box_size = 128;
  int64_t box_margin = 16;
  bool box_centered = false;
  double masked_fraction = 0.7;  // random inpainting
  std::string mask_file;         // inpainting with a user mask (PNG / safetensors)

  static TaskParams preset(Preset preset);
};

// The operator for an image of height × width; `seed` drives the random parts (motion kernel,
// box position, random mask). Throws p2l::Error for parameters the image cannot take.
std::unique_ptr<Operator> make_operator(Task task, const TaskParams& params, int64_t height,
                                        int64_t width, uint64_t seed);

}  // namespace p2l::operators
