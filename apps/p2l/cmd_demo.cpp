// `p2l demo`: degrades a test image with each task, restores it with P2L and every baseline,
// writes a montage (rows: tasks; columns: clean | measurement | naive | methods…) and prints a
// PSNR / SSIM / time table. The work is eval::run_demo (an evaluation of one image); this file
// parses flags.
#include <iostream>

#include "commands.h"
#include "p2l/eval/demo.h"
#include "p2l/operators/presets.h"

namespace p2l::cli {

namespace {

struct DemoArgs {
  eval::DemoOptions options;
  ComputeFlags compute;
};

}  // namespace

void add_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "demo",
      "Degrade a test image with each task, restore it with every method, and write a "
      "montage and a PSNR/SSIM/time table");
  auto a = std::make_shared<DemoArgs>();
  auto& o = a->options;
  cmd->add_option("-m,--model", o.model, "Model folder")->required();
  cmd->add_option("--image", o.image, "Clean image (default: the model's first test image)");
  cmd->add_option("--tasks", o.tasks, "Tasks (" + operators::task_names() + ")")->delimiter(',');
  cmd->add_option("--methods", o.methods, "Methods")->delimiter(',');
  cmd->add_option("--steps", o.steps, "DDIM steps for every method (default: each method's)")
      ->check(non_negative());
  cmd->add_option("--noise", o.noise, "Gaussian measurement noise σ_y")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", o.seed,
                  "Base seed of the measurements and the solvers (each task's derive from it, "
                  "as in p2l eval)");
  cmd->add_option("-o,--output", o.output,
                  "Montage PNG (the table goes to OUT.json beside it, every record and image to "
                  "the evaluation folder OUT.runs/)");
  cmd->add_flag("--resume", o.resume,
                "Continue an interrupted demo from OUT.runs/ (otherwise it starts afresh)");
  cmd->add_option("--batch", o.batch, "Solve up to B jobs of the same method at once")
      ->check(CLI::Range(1, 1024));
  add_compute_flags(cmd, a->compute);
  cmd->callback([a] {
    auto options = a->options;
    const auto load = load_options(a->compute);
    options.device = load.device;
    const auto precision = precision_names(a->compute);
    options.precision = precision.networks;
    options.vae_precision = precision.autoencoder;
    const auto report = eval::run_demo(options);
    std::cout << report.markdown << "\nwrote " << options.output
              << " (rows: tasks; columns: " << report.columns << ") and " << report.table << "\n";
  });
}

}  // namespace p2l::cli
