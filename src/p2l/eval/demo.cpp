#include "p2l/eval/demo.h"

#include <filesystem>
#include <iomanip>
#include <sstream>

#include "p2l/error.h"
#include "p2l/eval/image_metrics.h"
#include "p2l/eval/results.h"
#include "p2l/eval/runner.h"
#include "p2l/eval/summary.h"
#include "p2l/io/image.h"
#include "p2l/io/json_file.h"
#include "p2l/io/montage.h"

namespace p2l::eval {

namespace fs = std::filesystem;

namespace {

std::string fixed(double v, int precision) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(precision) << v;
  return s.str();
}

std::string absolute(const std::string& path) {
  return fs::absolute(path).lexically_normal().string();
}

// OUT.png → OUT<suffix> beside it.
std::string beside(const std::string& output, const std::string& suffix) {
  const fs::path p(output);
  return (p.parent_path() / (p.stem().string() + suffix)).string();
}

int64_t unet_evaluations(const nlohmann::json& counts) {
  return counts.at("unet_forward").get<int64_t>() + counts.at("unet_backward").get<int64_t>();
}

}  // namespace

Plan demo_plan(const DemoOptions& options) {
  Plan plan;
  plan.model = absolute(options.model);
  plan.tasks = options.tasks;
  plan.steps = options.steps;
  plan.noise = options.noise;
  plan.seed = options.seed;
  plan.precision = options.precision;
  plan.vae_precision = options.vae_precision;
  for (const auto& method : options.methods) plan.methods.push_back({method, method, {}, ""});
  // Default: the first of the model's test images.
  plan.images = evaluation_images(options.image.empty() ? std::vector<std::string>{}
                                                        : std::vector<std::string>{options.image},
                                  options.model);
  plan.images.resize(1);
  plan.metrics = metric_names(default_image_metrics());  // as run_evaluation runs them
  plan.validate();
  return plan;
}

DemoReport run_demo(const DemoOptions& options) {
  io::check_writable(options.output);  // before the work, not after it
  EvalOptions eval;
  eval.plan = demo_plan(options);
  eval.output = beside(options.output, ".runs");
  eval.resume = options.resume;
  eval.start_afresh = true;
  eval.device = options.device;
  eval.batch = options.batch;
  eval.show_progress = options.show_progress;
  run_evaluation(eval);
  const auto& plan = eval.plan;
  const auto& image = plan.images.front();
  const auto records = index_records(
      plan, read_results((fs::path(eval.output) / "results.jsonl").string()).records, eval.output);

  std::vector<std::vector<torch::Tensor>> grid;
  auto results = nlohmann::json::array();
  std::ostringstream table;
  table << "| task | method | PSNR (dB) | SSIM | time (s) | UNet evals |\n"
        << "|---|---|---|---|---|---|\n";
  for (const auto& task : plan.tasks) {
    const nlohmann::json* any = nullptr;
    for (const auto& method : plan.methods) {
      const auto& r = records.at(image.name + "|" + task + "|" + method.label);
      any = &r;
      if (r.at("status") != "ok") {
        table << "| " << task << " | " << method.label << " | diverged at step " << r.at("step")
              << " | | " << fixed(r.at("seconds"), 1) << " | |\n";
        results.push_back({{"task", task}, {"method", method.label}, {"error", r.at("error")}});
        continue;
      }
      const auto& counts = r.at("network_evaluations");
      table << "| " << task << " | " << method.label << " | " << fixed(r.at("psnr"), 2) << " | "
            << fixed(r.at("ssim"), 3) << " | " << fixed(r.at("seconds"), 1) << " | "
            << unet_evaluations(counts) << " |\n";
      results.push_back(
          {{"task", task},
           {"method", method.label},
           {"psnr", r.at("psnr")},
           {"ssim", r.at("ssim")},
           {"naive_psnr", r.at("naive_psnr")},
           {"naive_ssim", r.at("naive_ssim")},
           {"seconds", r.at("seconds")},
           {"network_evaluations", counts},
           {"parameters", r.at("parameters")},
           {"image", (fs::path(eval.output) / r.at("output").get<std::string>()).string()}});
    }
    table << "| " << task << " | (naive) | " << fixed(any->at("naive_psnr"), 2) << " | "
          << fixed(any->at("naive_ssim"), 3) << " | | |\n";
    grid.push_back(montage_row(eval.output, plan, records, image, task));
  }
  io::save_png(options.output, io::montage(grid));
  DemoReport report;
  report.markdown = table.str();
  report.table = beside(options.output, ".json");
  io::write_json(report.table, {{"image", image.path},
                                {"model", options.model},
                                {"noise", options.noise},
                                {"seed", options.seed},
                                {"precision", options.precision},
                                {"vae_precision", options.vae_precision},
                                {"runs_folder", absolute(eval.output)},
                                {"results", results}});
  report.columns = "clean | measurement | naive";
  for (const auto& method : plan.methods) report.columns += " | " + method.label;
  return report;
}

}  // namespace p2l::eval
