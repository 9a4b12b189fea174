// `p2l sample`: text-to-image with DDIM and classifier-free guidance.
#include <iostream>

#include "commands.h"
#include "p2l/io/json_file.h"
#include "p2l/pipelines/text_to_image.h"
#include "p2l/error.h"
#include "p2l/io/image.h"
#include "p2l/model/checkpoint.h"
#include "p2l/progress.h"

namespace p2l::cli {

namespace {
struct SampleArgs {
  std::string model, config, tokenizer, output = "sample.png";
  ComputeFlags compute;
  pipelines::TextToImageOptions options;
  bool size_given = false;
};
}  // namespace

void add_sample_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("sample", "Text-to-image sampling (DDIM + guidance) to a PNG");
  auto a = std::make_shared<SampleArgs>();
  cmd->add_option("-m,--model", a->model,
                  "Model folder or weight file (.safetensors, .ckpt, .pt, .pth, .bin)")
      ->required();
  cmd->add_option("-p,--prompt", a->options.prompt, "Prompt");
  cmd->add_option("-n,--negative-prompt", a->options.negative_prompt, "Negative prompt");
  cmd->add_option("--steps", a->options.steps, "DDIM steps")->check(CLI::Range(1, 1000));
  cmd->add_option("--cfg-scale", a->options.cfg_scale, "Classifier-free guidance scale");
  cmd->add_option("--eta", a->options.eta, "DDIM eta (0 = deterministic)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", a->options.seed, "Random seed");
  auto* w =
      cmd->add_option("-W,--width", a->options.width, "Width in pixels (default: the model's)");
  auto* h =
      cmd->add_option("-H,--height", a->options.height, "Height in pixels (default: the model's)");
  cmd->add_option("-o,--output", a->output, "Output PNG");
  cmd->add_option("--config", a->config, "Original-layout YAML for a single file");
  cmd->add_option("--tokenizer", a->tokenizer, "Folder with vocab.json and merges.txt");
  add_compute_flags(cmd, a->compute);
  cmd->callback([=] {
    io::check_writable(a->output);  // before the work, not after it
    auto load = load_options(a->compute);
    load.config_yaml = a->config;
    load.tokenizer_dir = a->tokenizer;
    auto sd = model::load_stable_diffusion(a->model, load);
    auto options = a->options;
    // Without -W/-H, use the resolution the model was made for (sample_size · f).
    const int64_t native = sd.config.unet.sample_size * sd.config.vae.downsampling_factor();
    if (w->count() == 0) options.width = native;
    if (h->count() == 0) options.height = native;
    Progress progress("sampling", options.steps);
    auto result = pipelines::text_to_image(sd, options,
                                           [&](int64_t done, int64_t) { progress.update(done); });
    progress.finish();
    io::save_png(a->output, result.decoded);
    std::cout << "wrote " << a->output << " (" << options.width << "x" << options.height << ", "
              << options.steps << " steps, "
              << Progress::format_duration(progress.elapsed_seconds()) << ")\n";
  });
}

}  // namespace p2l::cli
