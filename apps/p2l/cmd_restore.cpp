// `p2l restore`: restores a measurement written by `p2l degrade` with one of the solvers, and
// writes the image, optional previews of D(ẑ0), and a JSON report beside the image. The work
// is pipelines::restore_files; this file parses flags and prints the outcome.
#include <iomanip>
#include <iostream>
#include <map>
#include <set>

#include "commands.h"
#include "p2l/error.h"
#include "p2l/model/checkpoint.h"
#include "p2l/pipelines/restoration.h"
#include "p2l/progress.h"

namespace p2l::cli {

namespace {

struct RestoreArgs {
  std::string model, config, tokenizer, method = "p2l";
  ComputeFlags compute;
  pipelines::RestoreFiles files;
  pipelines::RestoreRequest request;
  std::map<std::string, std::string> values;  // hyperparameter flags as given
};

// Every hyperparameter of every method, once, with the help of its first owner.
std::vector<solvers::Hyperparameter> all_hyperparameters() {
  std::vector<solvers::Hyperparameter> all;
  std::set<std::string> seen;
  for (const auto& method : solvers::method_names()) {
    const auto defaults = solvers::default_hyperparameters(method, solvers::Scale::kSmall);
    for (const auto& h : defaults.table())
      if (seen.insert(h.name).second) all.push_back(h);
  }
  return all;
}

}  // namespace

void add_restore_command(CLI::App& app) {
  std::string methods;
  for (const auto& m : solvers::method_names()) methods += (methods.empty() ? "" : "|") + m;
  auto* cmd = app.add_subcommand(
      "restore",
      "Restore a measurement (from `p2l degrade`) by posterior sampling: writes OUT.png and "
      "OUT.json (every parameter, network evaluations, time, memory, data residual, PSNR/SSIM "
      "when the clean image is known)");
  auto a = std::make_shared<RestoreArgs>();
  cmd->add_option("-m,--model", a->model,
                  "Model folder or weight file (.safetensors, .ckpt, .pt, .pth, .bin)")
      ->required();
  cmd->add_option("--measurement", a->files.measurement, "Measurement JSON written by p2l degrade")
      ->required();
  cmd->add_option("--method", a->method, methods);
  cmd->add_option("--seed", a->request.seed, "Random seed");
  cmd->add_option("--samples", a->request.samples,
                  "Posterior samples in one batched solve (sample i: seed + 2i); OUT.png is "
                  "their mean, with OUT.sample-I.png, OUT.std.png (per-pixel spread), "
                  "OUT.montage.png and OUT.safetensors beside it")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--prompt", a->request.prompt, "Initial text condition (default: null prompt)");
  cmd->add_option("-o,--output", a->files.output, "Output PNG");
  cmd->add_option("--report", a->files.report, "Report JSON (default: OUT.json beside the image)");
  cmd->add_option("--ground-truth", a->files.ground_truth,
                  "Clean image for PSNR/SSIM (default: the measurement's source image)");
  cmd->add_option("--preview-every", a->files.preview_every,
                  "Write D(z0) every N steps to OUT.preview/ (0 = never)")
      ->check(non_negative());
  cmd->add_option("--config", a->config, "Original-layout YAML for a single file");
  cmd->add_option("--tokenizer", a->tokenizer, "Folder with vocab.json and merges.txt");
  add_compute_flags(cmd, a->compute);
  auto* group = cmd->add_option_group("hyperparameters",
                                      "Per method; defaults depend on the model and the task "
                                      "(see docs/solvers.md)");
  for (const auto& h : all_hyperparameters())
    group->add_option_function<std::string>(
        "--" + h.name, [a, name = h.name](const std::string& v) { a->values[name] = v; }, h.help);
  cmd->callback([a] {
    pipelines::check_restore_files(a->files);  // before the work, not after it
    const auto measurement = operators::load_measurement(a->files.measurement);
    auto load = load_options(a->compute);
    load.config_yaml = a->config;
    load.tokenizer_dir = a->tokenizer;
    auto request = a->request;
    request.method = a->method;
    for (const auto& [name, text] : a->values)
      request.overrides[name] = solvers::parse_hyperparameter_value(text, "--" + name);
    auto model = model::load_stable_diffusion(a->model, load);
    pipelines::solver_for(request, model, measurement);  // bad flags fail before any work
    const auto report = pipelines::restore_files(model, measurement, a->files, request);
    std::cout << "wrote " << a->files.output << " and " << a->files.report_path() << " ("
              << Progress::format_duration(report.seconds);
    if (report.quality)
      std::cout << std::fixed << std::setprecision(2) << ", PSNR " << report.quality->psnr
                << " dB (naive " << report.naive_quality->psnr << "), SSIM " << std::setprecision(3)
                << report.quality->ssim;
    std::cout << ", |y - A(x)| " << std::setprecision(4) << report.data_residual << ")\n";
    if (report.did_not_fit())
      std::cout << "did not fit the measurement: |y - A(x)| is " << std::setprecision(1)
                << *report.fit_ratio
                << " times that of the autoencoded clean image (more steps, another seed or "
                   "method; docs/eval.md)\n";
  });
}

}  // namespace p2l::cli
