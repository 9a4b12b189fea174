// `p2l degrade`: makes a measurement y = A(x) + n of a clean image and writes it with everything
// needed to rebuild A (the input of `p2l restore`); with --observed the image is y itself, a
// degraded image of the user's own, and only A is built around it.
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "p2l/io/json_file.h"
#include "p2l/error.h"
#include "p2l/io/image.h"
#include "p2l/operators/measurement.h"
#include "p2l/operators/presets.h"

namespace p2l::cli {

namespace {

namespace ops = p2l::operators;

struct DegradeArgs {
  std::string input, output, task, preset = "auto", kernel_file, mask_file;
  ops::TaskParams params;  // flag targets; only the flags given override the preset
  int64_t kernel_size = 0;
  double sigma = 0, intensity = 0;
  double noise = 0.05, poisson_rate = 1.0;
  uint64_t seed = 0;
  bool observed = false;
};

// A task-specific flag given with another task is a mistake worth stopping for.
void require_task(const CLI::Option* option, bool applies, const std::string& tasks) {
  if (option->count() > 0 && !applies)
    throw Error(option->get_name() + ": only for --task " + tasks);
}

}  // namespace

void add_degrade_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "degrade",
      "Degrade an image: y = A(x) + noise. -o OUT writes OUT.png (y to look at; for sr the "
      "small image), OUT.safetensors (the exact y and the kernel or mask) and OUT.json (operator, "
      "parameters, noise, seed, source image: the input of `p2l restore`). A trailing .json, "
      ".png or .safetensors on OUT is dropped; missing folders are created. Example: "
      "p2l degrade --task sr --factor 4 photo.png -o out/photo_sr4");
  auto a = std::make_shared<DegradeArgs>();
  cmd->add_option("input", a->input,
                  "Clean image (PNG or JPEG); with --observed, the degraded image y")
      ->required();
  cmd->add_option("-o,--output", a->output, "Output base OUT (see above)")->required();
  cmd->add_option("--task", a->task, ops::task_names())->required();
  cmd->add_option("--preset", a->preset,
                  "Parameter preset: 512 (DPS/PSLD settings), 64 (p2l's small models) or auto "
                  "(512 when the shorter side is ≥ 256)");
  auto* factor = cmd->add_option("--factor", a->params.sr_factor,
                                 "sr: down-sampling factor (preset 512: 8, 64: 4)");
  auto* kernel_size = cmd->add_option("--kernel-size", a->kernel_size,
                                      "gauss-blur, motion-blur: odd kernel size (61 / 9)");
  auto* sigma = cmd->add_option("--sigma", a->sigma, "gauss-blur: σ in pixels (3 / 1)");
  auto* intensity =
      cmd->add_option("--intensity", a->intensity, "motion-blur: shake intensity in [0, 1] (0.5)");
  auto* kernel = cmd->add_option(
      "--kernel", a->kernel_file,
      "motion-blur: use this kernel (grey PNG or safetensors, normalised to sum 1) instead of a "
      "random one");
  auto* box =
      cmd->add_option("--box-size", a->params.box_size, "box-inpaint: hole size (128 / 16)");
  auto* margin = cmd->add_option("--margin", a->params.box_margin,
                                 "box-inpaint: min. distance to the edges (16 / 2)");
  auto* centered =
      cmd->add_flag("--centered", a->params.box_centered, "box-inpaint: centre the hole");
  auto* fraction = cmd->add_option("--fraction", a->params.masked_fraction,
                                   "random-inpaint: fraction of pixels missing, in [0, 1] (0.7)");
  auto* mask = cmd->add_option(
      "--mask", a->mask_file,
      "inpaint: mask image (white = observed, black = missing) or safetensors tensor");
  auto* noise = cmd->add_option("--noise", a->noise,
                                "Gaussian noise σ on the [-1, 1] scale (default 0.05; 0 = none)");
  cmd->add_option("--poisson", a->poisson_rate,
                  "Poisson noise of this rate instead (counts ~ Poisson(255·rate·(y+1)/2))")
      ->excludes(noise);
  cmd->add_option("--seed", a->seed, "Seed of the random kernel / mask / box position and noise");
  cmd->add_flag("--observed", a->observed,
                "INPUT is already the measurement y (a small, blurred, holed or noisy image of "
                "your own): nothing is added to it, --noise / --poisson state its assumed noise, "
                "and the operator is built for the image it came from (sr: --factor times larger)");

  cmd->callback([=] {
    io::check_writable(a->output + ".json");
    const auto task = ops::parse_task(a->task);
    using ops::Task;
    require_task(factor, task == Task::kSuperResolution, "sr");
    require_task(kernel_size, task == Task::kGaussianBlur || task == Task::kMotionBlur,
                 "gauss-blur or motion-blur");
    require_task(sigma, task == Task::kGaussianBlur, "gauss-blur");
    require_task(intensity, task == Task::kMotionBlur, "motion-blur");
    require_task(kernel, task == Task::kMotionBlur, "motion-blur");
    require_task(box, task == Task::kBoxInpainting, "box-inpaint");
    require_task(margin, task == Task::kBoxInpainting, "box-inpaint");
    require_task(centered, task == Task::kBoxInpainting, "box-inpaint");
    require_task(fraction, task == Task::kRandomInpainting, "random-inpaint");
    require_task(mask, task == Task::kInpainting, "inpaint");
    if (task == Task::kInpainting && mask->count() == 0)
      throw Error("--task inpaint needs --mask FILE");
    if (kernel->count() > 0 && (kernel_size->count() > 0 || intensity->count() > 0))
      throw Error("--kernel: the kernel file sets the blur; drop --kernel-size / --intensity");

    // `photo.png -o photo` would write y's preview over the image itself.
    const auto files = ops::measurement_files(a->output);
    for (const auto& written : {files.json, files.tensors, files.preview})
      if (std::filesystem::absolute(written).lexically_normal() ==
          std::filesystem::absolute(a->input).lexically_normal())
        throw Error("-o " + a->output + " would overwrite the input " + a->input +
                    ": pick another -o");
    if (a->observed) {
      // Random parts of an operator cannot be the ones that degraded a real image.
      if (task == Task::kRandomInpainting)
        throw Error(
            "--observed: random-inpaint draws its own mask; give the image's mask with "
            "--task inpaint --mask FILE");
      if (task == Task::kMotionBlur && kernel->count() == 0)
        throw Error(
            "--observed: motion-blur needs the blur's kernel (--kernel FILE), not a "
            "random one");
      if (task == Task::kBoxInpainting && !a->params.box_centered)
        throw Error(
            "--observed: box-inpaint places its box at random; pass --centered, or give "
            "the hole as --task inpaint --mask FILE");
    }

    const auto noise_model = cmd->count("--poisson") > 0 ? ops::NoiseModel::poisson(a->poisson_rate)
                                                         : ops::NoiseModel::gaussian(a->noise);
    auto x = io::load_image(a->input);
    // The clean image's size: the input's, or for an observed low-resolution image the size it
    // is the down-sampling of. Without --factor, the preset is the one whose factor makes that
    // image its kind (a 16² input is ×4 of the 64² models, a 64² one ×8 of SD's 512²).
    int64_t height = x.size(2), width = x.size(3);
    auto preset =
        a->preset == "auto" ? ops::preset_for_image(height, width) : ops::parse_preset(a->preset);
    if (a->observed && task == Task::kSuperResolution) {
      const auto large = ops::TaskParams::preset(ops::Preset::k512).sr_factor;
      if (a->preset == "auto")
        preset = factor->count() ? ops::preset_for_image(height * a->params.sr_factor,
                                                         width * a->params.sr_factor)
                                 : ops::preset_for_image(height * large, width * large);
      const auto f =
          factor->count() ? a->params.sr_factor : ops::TaskParams::preset(preset).sr_factor;
      height *= f;
      width *= f;
    }

    // The preset, then every flag the user gave.
    auto params = ops::TaskParams::preset(preset);
    if (factor->count()) params.sr_factor = a->params.sr_factor;
    if (kernel_size->count()) {
      params.gaussian_kernel_size = a->kernel_size;
      params.motion_kernel_size = a->kernel_size;
    }
    if (sigma->count()) params.gaussian_sigma = a->sigma;
    if (intensity->count()) params.motion_intensity = a->intensity;
    params.motion_kernel_file = a->kernel_file;
    if (box->count()) params.box_size = a->params.box_size;
    if (margin->count()) params.box_margin = a->params.box_margin;
    params.box_centered = a->params.box_centered;
    if (fraction->count()) params.masked_fraction = a->params.masked_fraction;
    params.mask_file = a->mask_file;

    std::shared_ptr<const ops::Operator> op =
        ops::make_operator(task, params, height, width, a->seed);
    ops::Measurement m;
    nlohmann::json extra = {{"task", ops::task_name(task)}, {"preset", ops::preset_name(preset)}};
    if (a->observed) {
      m.op = op;
      // A mask operator's y is zero where nothing was observed, as A(x) is; the others' y is the
      // image as given (blurring or down-sampling it again would be another measurement).
      const bool masked = task == Task::kBoxInpainting || task == Task::kInpainting;
      m.y = masked ? op->forward(x) : x;
      m.noise = noise_model;
      m.seed = a->seed;
      m.height = height;
      m.width = width;
      extra["observed"] = true;  // no source image: there is no clean one to compare with
    } else {
      m = ops::measure(x, op, noise_model, a->seed);
      std::error_code ec;
      auto source = std::filesystem::weakly_canonical(std::filesystem::absolute(a->input), ec);
      m.source_image = ec ? std::filesystem::absolute(a->input).string() : source.string();
    }
    ops::save_measurement(m, a->output, extra);
    std::cout << "wrote " << files.json << ", " << files.tensors << ", " << files.preview << " ("
              << ops::task_name(task) << ", y " << m.y.size(2) << "x" << m.y.size(3);
    if (a->observed)
      std::cout << " as observed, of a " << height << "x" << width << " image, assumed noise ";
    else
      std::cout << ", noise ";
    std::cout << m.noise.to_json().dump() << ", seed " << a->seed << ")\n";
  });
}

}  // namespace p2l::cli
