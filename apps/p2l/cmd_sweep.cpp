// `p2l sweep`: a grid over hyperparameters of one method on one or more tasks and images; each
// grid point's mean ± std PSNR / SSIM, time and data residual, as a markdown table and JSON, and
// an SVG plot of PSNR against the first grid axis. The work is eval::run_sweep (an evaluation
// with a column per grid point); this file parses flags.
#include <iostream>

#include "commands.h"
#include "p2l/eval/sweep.h"
#include "p2l/operators/presets.h"

namespace p2l::cli {

namespace {

struct SweepArgs {
  eval::SweepOptions options;
  ComputeFlags compute;
};

}  // namespace

void add_sweep_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "sweep",
      "Grid over a method's hyperparameters on tasks × images: mean ± std PSNR/SSIM, "
      "time and data residual per grid point (OUT.md, OUT.json, OUT.svg)");
  auto a = std::make_shared<SweepArgs>();
  auto& o = a->options;
  cmd->add_option("-m,--model", o.model, "Model folder")->required();
  cmd->add_option("--method", o.method, "Method");
  cmd->add_option("--tasks", o.tasks, "Tasks (" + operators::task_names() + ")")->delimiter(',');
  cmd->add_option("--grid", o.grid, "NAME=V1,V2,... (repeat for a product grid)")->required();
  cmd->add_option("--set", o.set, "NAME=VALUE held fixed (repeatable)");
  cmd->add_option("--images", o.images, "Images or folders (default: the model's test_images)");
  cmd->add_option("--noise", o.noise, "Gaussian measurement noise σ_y")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", o.seed,
                  "Base seed; each job's seeds derive from it, the image's file name and the "
                  "task (as in p2l eval)");
  cmd->add_option("-o,--output", o.output, "Output base: OUT.md, OUT.json and OUT.svg");
  cmd->add_option("--runs-folder", o.runs_folder,
                  "The evaluation folder: every record and image (default: OUT.runs/)");
  cmd->add_flag("--resume", o.resume,
                "Continue an interrupted sweep from its runs folder (otherwise it starts afresh)");
  cmd->add_option("--batch", o.batch, "Solve up to B jobs of the same grid point at once")
      ->check(CLI::Range(1, 1024));
  add_compute_flags(cmd, a->compute);
  cmd->callback([a] {
    auto options = a->options;
    const auto load = load_options(a->compute);
    options.device = load.device;
    const auto precision = precision_names(a->compute);
    options.precision = precision.networks;
    options.vae_precision = precision.autoencoder;
    const auto report = eval::run_sweep(options);
    std::cout << report.markdown << "\nwrote " << options.output << ".md, " << options.output
              << ".json";
    if (!report.plot.empty()) std::cout << " and " << report.plot;
    if (!report.plot_error.empty()) std::cout << " (no plot: " << report.plot_error << ")";
    std::cout << "\n";
  });
}

}  // namespace p2l::cli
