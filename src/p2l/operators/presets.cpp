#include "p2l/operators/presets.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "p2l/error.h"
#include "p2l/operators/box_inpainting.h"
#include "p2l/operators/denoising.h"
#include "p2l/operators/gaussian_blur.h"
#include "p2l/operators/inpainting.h"
#include "p2l/operators/motion_blur.h"
#include "p2l/operators/random_inpainting.h"
#include "p2l/operators/super_resolution.h"

namespace p2l::operators {
namespace {

const std::vector<std::pair<Task, std::string>>& task_table() {
  static const std::vector<std::pair<Task, std::string>> table = {
      {Task::kSuperResolution, "sr"},
      {Task::kGaussianBlur, "gauss-blur"},
      {Task::kMotionBlur, "motion-blur"},
      {Task::kBoxInpainting, "box-inpaint"},
      {Task::kRandomInpainting, "random-inpaint"},
      {Task::kInpainting, "inpaint"},
      {Task::kDenoising, "denoise"}};
  return table;
}

// Below this shorter side the small-model preset applies.
constexpr int64_t kLargePresetMinSide = 256;

}  // namespace

Task parse_task(const std::string& name) {
  for (const auto& [task, text] : task_table())
    if (text == name) return task;
  throw Error("unknown task '" + name + "' (use " + task_names() + ")");
}

std::string task_name(Task task) {
  for (const auto& [t, text] : task_table())
    if (t == task) return text;
  return "?";
}

std::string task_names() {
  std::string names;
  for (const auto& [task, text] : task_table()) names += (names.empty() ? "" : ", ") + text;
  return names;
}

Preset parse_preset(const std::string& name) {
  if (name == "512") return Preset::k512;
  if (name == "64") return Preset::k64;
  throw Error("unknown preset '" + name + "' (use 512 or 64)");
}

std::string preset_name(Preset preset) { return preset == Preset::k512 ? "512" : "64"; }

Preset preset_for_image(int64_t height, int64_t width) {
  return std::min(height, width) >= kLargePresetMinSide ? Preset::k512 : Preset::k64;
}

TaskParams TaskParams::preset(Preset preset) {
  TaskParams p;  // the defaults are preset 512
  if (preset == Preset::k64) {
    p.sr_factor = 4;
    p.gaussian_kernel_size = 9;
    p.gaussian_sigma = 1.0;
    p.motion_kernel_size = 9;
    p.box_size = 16;
    p.box_margin = 2;
  }
  return p;
}

std::unique_ptr<Operator> make_operator(Task task, const TaskParams& params, int64_t height,
                                        int64_t width, uint64_t seed) {
  std::unique_ptr<Operator> op;
  switch (task) {
    case Task::kSuperResolution:
      op = std::make_unique<SuperResolution>(params.sr_factor);
      break;
    case Task::kGaussianBlur:
      op = std::make_unique<GaussianBlur>(params.gaussian_kernel_size, params.gaussian_sigma);
      break;
    case Task::kMotionBlur:
      op = params.motion_kernel_file.empty()
               ? MotionBlur::random(params.motion_kernel_size, params.motion_intensity, seed)
               : MotionBlur::from_file(params.motion_kernel_file);
      break;
    case Task::kBoxInpainting:
      op = params.box_centered
               ? BoxInpainting::centered(height, width, params.box_size)
               : BoxInpainting::random(height, width, params.box_size, params.box_margin, seed);
      break;
    case Task::kRandomInpainting:
      op = std::make_unique<RandomInpainting>(height, width, params.masked_fraction, seed);
      break;
    case Task::kInpainting:
      if (params.mask_file.empty()) throw Error("inpaint: needs a mask file");
      op = Inpainting::from_file(params.mask_file);
      break;
    case Task::kDenoising:
      op = std::make_unique<Denoising>();
      break;
  }
  op->output_shape({1, 3, height, width});  // rejects sizes the operator cannot take
  return op;
}

}  // namespace p2l::operators
