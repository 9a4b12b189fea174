// `p2l demo`: degrades a test image with each task, restores it with P2L and every baseline,
// writes a montage (rows: tasks; columns: clean | measurement | naive | methods…) and prints a
// PSNR / SSIM / time table.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "p2l/error.h"
#include "p2l/eval/inputs.h"
#include "p2l/io/image.h"
#include "p2l/io/json_file.h"
#include "p2l/io/montage.h"
#include "p2l/model/checkpoint.h"
#include "p2l/operators/naive.h"
#include "p2l/operators/presets.h"
#include "p2l/solvers/restoration.h"

namespace p2l::cli {

namespace fs = std::filesystem;
namespace ops = p2l::operators;

namespace {

struct DemoArgs {
  std::string model, image, output = "demo.png";
  ComputeFlags compute;
  std::vector<std::string> tasks = eval::evaluation_tasks();
  std::vector<std::string> methods = solvers::method_names();
  int64_t steps = 0;  // 0 = each method's default
  double noise = 0.05;
  uint64_t seed = 0;
};

std::string fixed(double v, int precision) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(precision) << v;
  return s.str();
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "demo", "Degrade a test image with each task, restore it with every method, and write a "
              "montage and a PSNR/SSIM/time table");
  auto a = std::make_shared<DemoArgs>();
  cmd->add_option("-m,--model", a->model, "Model folder")->required();
  cmd->add_option("--image", a->image, "Clean image (default: the model's first test image)");
  cmd->add_option("--tasks", a->tasks, "Tasks (" + ops::task_names() + ")")->delimiter(',');
  cmd->add_option("--methods", a->methods, "Methods")->delimiter(',');
  cmd->add_option("--steps", a->steps, "DDIM steps for every method (default: each method's)")
      ->check(non_negative());
  cmd->add_option("--noise", a->noise, "Gaussian measurement noise σ_y")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", a->seed, "Seed of the measurements and the solvers");
  cmd->add_option("-o,--output", a->output, "Montage PNG (a JSON with the table is written beside)");
  add_compute_flags(cmd, a->compute);
  cmd->callback([a] {
    io::check_writable(a->output);  // before the work, not after it
    for (const auto& m : a->methods) solvers::default_hyperparameters(m, solvers::Scale::kSmall);
    for (const auto& t : a->tasks) ops::parse_task(t);
    const auto load = load_options(a->compute);
    auto model = model::load_stable_diffusion(a->model, load);
    // Default: the first of the model's held-out test images.
    const auto image_path =
        a->image.empty()
            ? eval::collect_images({}, (fs::path(a->model) / "test_images").string()).front()
            : a->image;
    const auto clean = io::load_image(image_path);
    const int64_t h = clean.size(2), w = clean.size(3);

    std::vector<std::vector<torch::Tensor>> grid;
    auto results = nlohmann::json::array();
    std::ostringstream table;
    table << "| task | method | PSNR (dB) | SSIM | time (s) | UNet evals |\n"
          << "|---|---|---|---|---|---|\n";
    for (const auto& task : a->tasks) {
      auto m = eval::measure_task(clean, task, a->noise, a->seed);
      m.source_image = fs::absolute(image_path).string();
      const auto naive = ops::naive_reconstruction(*m.op, m.y, h, w);
      std::vector<torch::Tensor> row = {clean, m.y, naive};
      for (const auto& method : a->methods) {
        solvers::RestoreRequest request;
        request.method = method;
        request.seed = a->seed;
        request.ground_truth = clean;
        if (a->steps > 0) request.overrides["steps"] = static_cast<double>(a->steps);
        auto out = solvers::restore(model, m, request);
        row.push_back(out.image);
        const auto& r = out.report;
        const auto& counts = r["network_evaluations"];
        const int64_t unet = counts["unet_forward"].get<int64_t>() +
                             counts["unet_backward"].get<int64_t>();
        table << "| " << task << " | " << method << " | " << fixed(r["psnr"], 2) << " | "
              << fixed(r["ssim"], 3) << " | " << fixed(r["seconds"], 1) << " | " << unet
              << " |\n";
        results.push_back({{"task", task}, {"method", method}, {"psnr", r["psnr"]},
                           {"ssim", r["ssim"]}, {"naive_psnr", r["naive_psnr"]},
                           {"naive_ssim", r["naive_ssim"]}, {"seconds", r["seconds"]},
                           {"network_evaluations", counts}, {"parameters", r["parameters"]}});
      }
      const auto naive_psnr = results.back()["naive_psnr"].get<double>();
      const auto naive_ssim = results.back()["naive_ssim"].get<double>();
      table << "| " << task << " | (naive) | " << fixed(naive_psnr, 2) << " | "
            << fixed(naive_ssim, 3) << " | | |\n";
      grid.push_back(row);
    }
    io::save_png(a->output, io::montage(grid));
    const auto json_path =
        (fs::path(a->output).parent_path() / (fs::path(a->output).stem().string() + ".json"))
            .string();
    io::write_json(json_path, {{"image", image_path}, {"model", a->model}, {"noise", a->noise},
                               {"seed", a->seed}, {"results", results}});
    std::string columns = "clean | measurement | naive";
    for (const auto& m : a->methods) columns += " | " + m;
    std::cout << table.str() << "\nwrote " << a->output << " (rows: tasks; columns: " << columns
              << ") and " << json_path << "\n";
  });
}

}  // namespace p2l::cli
