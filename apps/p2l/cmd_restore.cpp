// `p2l restore`: restores a measurement written by `p2l degrade` with one of the solvers, and
// writes the image, optional previews of D(ẑ0), and a JSON report beside the image.
#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "commands.h"
#include "p2l/error.h"
#include "p2l/io/image.h"
#include "p2l/io/json_file.h"
#include "p2l/io/montage.h"
#include "p2l/io/safetensors.h"
#include "p2l/model/checkpoint.h"
#include "p2l/progress.h"
#include "p2l/solvers/fit.h"
#include "p2l/solvers/restoration.h"

namespace p2l::cli {

namespace fs = std::filesystem;

namespace {

struct RestoreArgs {
  std::string model, config, tokenizer, measurement, method = "p2l", output = "restored.png";
  std::string ground_truth, report;
  ComputeFlags compute;
  int64_t preview_every = 0;
  solvers::RestoreRequest request;
  std::map<std::string, std::string> values;  // hyperparameter flags as given
};

// OUT.png → OUT.json; the previews go to OUT.preview/.
std::string beside(const std::string& output, const std::string& suffix) {
  fs::path p(output);
  return (p.parent_path() / (p.stem().string() + suffix)).string();
}

// The samples of a batched restoration beside OUT.png (the mean): each sample, the per-pixel
// standard deviation as a picture (black 0, white the largest; the scale goes in the report), a
// montage (samples | mean | spread) and every tensor in OUT.safetensors.
void write_samples(const std::string& output, solvers::RestoreOutcome& out) {
  const int64_t n = out.samples.size(0);
  std::vector<torch::Tensor> row;
  auto files = nlohmann::json::array();
  for (int64_t i = 0; i < n; ++i) {
    const auto path = beside(output, ".sample-" + std::to_string(i) + ".png");
    io::save_png(path, out.samples.slice(0, i, i + 1));
    files.push_back(fs::absolute(path).string());
    row.push_back(out.samples.slice(0, i, i + 1).to(torch::kCPU, torch::kFloat));
  }
  const double top = std::max(out.spread.max().item<double>(), 1e-12);
  const auto spread_picture = (out.spread / top * 2 - 1).to(torch::kCPU, torch::kFloat);
  const auto spread_path = beside(output, ".std.png");
  io::save_png(spread_path, spread_picture);
  row.push_back(out.image.to(torch::kCPU, torch::kFloat));
  row.push_back(spread_picture);
  const auto montage_path = beside(output, ".montage.png");
  io::save_png(montage_path, io::montage({row}));
  const auto tensors_path = beside(output, ".safetensors");
  io::save_safetensors(tensors_path, {{"samples", out.samples},
                                      {"mean", out.image},
                                      {"std", out.spread}},
                       {{"format", "pt"}});
  out.report["sample_images"] = files;
  out.report["std_image"] = fs::absolute(spread_path).string();
  out.report["std_image_white"] = top;
  out.report["montage"] = fs::absolute(montage_path).string();
  out.report["tensors"] = fs::absolute(tensors_path).string();
}

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
  cmd->add_option("--measurement", a->measurement, "Measurement JSON written by p2l degrade")
      ->required();
  cmd->add_option("--method", a->method, methods);
  cmd->add_option("--seed", a->request.seed, "Random seed");
  cmd->add_option("--samples", a->request.samples,
                  "Posterior samples in one batched solve (sample i: seed + 2i); OUT.png is "
                  "their mean, with OUT.sample-I.png, OUT.std.png (per-pixel spread), "
                  "OUT.montage.png and OUT.safetensors beside it")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--prompt", a->request.prompt, "Initial text condition (default: null prompt)");
  cmd->add_option("-o,--output", a->output, "Output PNG");
  cmd->add_option("--report", a->report, "Report JSON (default: OUT.json beside the image)");
  cmd->add_option("--ground-truth", a->ground_truth,
                  "Clean image for PSNR/SSIM (default: the measurement's source image)");
  cmd->add_option("--preview-every", a->preview_every,
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
    io::check_writable(a->output);  // before the work, not after it
    if (!a->report.empty()) io::check_writable(a->report);
    auto measurement = operators::load_measurement(a->measurement);
    auto load = load_options(a->compute);
    load.config_yaml = a->config;
    load.tokenizer_dir = a->tokenizer;
    auto request = a->request;
    request.method = a->method;
    for (const auto& [name, text] : a->values)
      request.overrides[name] = solvers::parse_hyperparameter_value(text, "--" + name);
    auto model = model::load_stable_diffusion(a->model, load);
    solvers::solver_for(request, model, measurement);  // bad flags fail before any work
    if (!a->ground_truth.empty()) request.ground_truth = io::load_image(a->ground_truth);
    const std::string report_path = a->report.empty() ? beside(a->output, ".json") : a->report;
    // `--measurement photo.json -o photo.png` would put the report over the measurement.
    for (const auto& [written, flag] :
         {std::pair<std::string, std::string>{report_path, "the report"}, {a->output, "-o"}})
      if (fs::absolute(written).lexically_normal() ==
          fs::absolute(a->measurement).lexically_normal())
        throw Error(flag + " (" + written + ") would overwrite the measurement " + a->measurement +
                    ": pick another -o or --report");
    if (a->preview_every > 0) {
      const auto dir = beside(a->output, ".preview");
      fs::create_directories(dir);
      request.observer = [dir, every = a->preview_every](const solvers::StepReport& s) {
        if (s.step % every != 0 && s.step != s.total) return;
        std::ostringstream name;
        name << "step-" << std::setw(4) << std::setfill('0') << s.step << ".png";
        io::save_png((fs::path(dir) / name.str()).string(), s.estimate.slice(0, 0, 1));
      };
    }
    solvers::RestoreOutcome out;
    try {
      out = solvers::restore(model, measurement, request);
    } catch (const solvers::DivergenceError& e) {
      // Keep what finished: the last finite estimate, and a report saying what happened.
      nlohmann::json report = {
          {"method", a->method}, {"status", "diverged"}, {"error", e.what()}, {"step", e.step()}};
      if (e.last_finite_estimate().defined()) {
        const auto saved = beside(a->output, ".last-finite.png");
        // One picture: the sample, or the samples of a batched solve side by side.
        const auto& last = e.last_finite_estimate();
        std::vector<torch::Tensor> row;
        for (int64_t i = 0; i < last.size(0); ++i)
          row.push_back(last.slice(0, i, i + 1).to(torch::kCPU, torch::kFloat));
        io::save_png(saved, row.size() == 1 ? row.front() : io::montage({row}));
        report["last_finite_estimate"] = saved;
      }
      io::write_json(report_path, report);
      throw Error(std::string(e.what()) + " (report: " + report_path + ")");
    }
    io::save_png(a->output, out.image);
    if (request.samples > 1) write_samples(a->output, out);
    out.report["status"] = "finished";
    out.report["measurement"] = fs::absolute(a->measurement).string();
    out.report["output"] = fs::absolute(a->output).string();
    io::write_json(report_path, out.report);
    std::cout << "wrote " << a->output << " and " << report_path << " ("
              << Progress::format_duration(out.report["seconds"].get<double>());
    if (out.report.contains("psnr"))
      std::cout << std::fixed << std::setprecision(2) << ", PSNR "
                << out.report["psnr"].get<double>() << " dB (naive "
                << out.report["naive_psnr"].get<double>() << "), SSIM " << std::setprecision(3)
                << out.report["ssim"].get<double>();
    std::cout << ", |y - A(x)| " << std::setprecision(4)
              << out.report["data_residual"].get<double>() << ")\n";
    if (out.report.contains("fit_ratio") &&
        out.report["fit_ratio"].get<double>() > solvers::kMisfitRatio)
      std::cout << "did not fit the measurement: |y - A(x)| is " << std::setprecision(1)
                << out.report["fit_ratio"].get<double>()
                << " times that of the autoencoded clean image (more steps, another seed or "
                   "method; docs/eval.md)\n";
  });
}

}  // namespace p2l::cli
