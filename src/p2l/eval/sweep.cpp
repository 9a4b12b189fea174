#include "p2l/eval/sweep.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "p2l/error.h"
#include "p2l/eval/image_metrics.h"
#include "p2l/eval/inputs.h"
#include "p2l/eval/results.h"
#include "p2l/eval/runner.h"
#include "p2l/eval/statistics.h"
#include "p2l/io/json_file.h"
#include "p2l/io/svg_plot.h"
#include "p2l/model/checkpoint.h"
#include "p2l/solvers/solver.h"

namespace p2l::eval {

namespace fs = std::filesystem;

SweepAxis parse_axis(const std::string& spec, const std::string& flag) {
  const auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    throw Error(flag + " '" + spec + "': expected NAME=V1,V2,...");
  SweepAxis axis{spec.substr(0, eq), {}};
  std::stringstream values(spec.substr(eq + 1));
  for (std::string v; std::getline(values, v, ',');)
    axis.values.push_back(solvers::parse_hyperparameter_value(v, flag + " " + axis.name));
  return axis;
}

namespace {

std::string value_text(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::ostringstream o;
  o << std::setprecision(10) << v;
  return o.str();
}

// A value as a label may spell it (plan.h: check_label): 1e+30 as 1e30.
std::string label_text(double v) {
  auto text = value_text(v);
  text.erase(std::remove(text.begin(), text.end(), '+'), text.end());
  return text;
}

std::string pm(const std::vector<double>& v, int precision) {
  const auto [m, s] = mean_std(v);
  std::ostringstream o;
  o << std::fixed << std::setprecision(precision) << m << " ± " << s;
  return o.str();
}

// A grid point: the value of each axis, in axis order.
struct Point {
  std::vector<double> values;
  std::string label;
};

struct Grid {
  std::vector<SweepAxis> axes;
  std::map<std::string, double> fixed;
  std::vector<Point> points;  // the product of the axes, the first axis slowest
};

Grid grid_of(const SweepOptions& options) {
  Grid grid;
  for (const auto& g : options.grid) grid.axes.push_back(parse_axis(g, "--grid"));
  if (grid.axes.empty()) throw Error("sweep: no --grid");
  for (const auto& f : options.set) {
    auto axis = parse_axis(f, "--set");
    if (axis.values.size() != 1) throw Error("--set " + f + ": one value expected");
    grid.fixed[axis.name] = axis.values[0];
  }
  // Names and values checked before the model loads (names do not depend on its scale).
  auto defaults = solvers::default_hyperparameters(options.method, solvers::Scale::kSmall);
  for (const auto& axis : grid.axes) {
    defaults.require(axis.name, "--grid " + axis.name);
    for (const double v : axis.values) defaults.set(axis.name, v, "--grid");
  }
  for (const auto& [name, value] : grid.fixed) {
    defaults.require(name, "--set " + name);
    defaults.set(name, value, "--set");
  }
  grid.points = {{}};
  for (const auto& axis : grid.axes) {
    std::vector<Point> next;
    for (const auto& p : grid.points)
      for (double v : axis.values) {
        auto q = p;
        q.values.push_back(v);
        q.label += (q.label.empty() ? "" : "_") + axis.name + "-" + label_text(v);
        next.push_back(q);
      }
    grid.points = next;
  }
  return grid;
}

MethodSpec column_of(const SweepOptions& options, const Grid& grid, const Point& point) {
  MethodSpec spec{point.label, options.method, grid.fixed, ""};
  for (size_t k = 0; k < grid.axes.size(); ++k) spec.overrides[grid.axes[k].name] = point.values[k];
  return spec;
}

std::string absolute(const std::string& path) {
  return fs::absolute(path).lexically_normal().string();
}

}  // namespace

std::string SweepOptions::runs_folder_or_default() const {
  return runs_folder.empty() ? output + ".runs" : runs_folder;
}

Plan sweep_plan(const SweepOptions& options) {
  const auto grid = grid_of(options);
  Plan plan;
  plan.model = absolute(options.model);
  plan.tasks = options.tasks;
  plan.noise = options.noise;
  plan.seed = options.seed;
  plan.precision = options.precision;
  plan.vae_precision = options.vae_precision;
  for (const auto& point : grid.points) plan.methods.push_back(column_of(options, grid, point));
  plan.images = evaluation_images(options.images, options.model);
  plan.metrics = metric_names(default_image_metrics());  // as run_evaluation runs them
  plan.validate();
  return plan;
}

SweepReport run_sweep(const SweepOptions& options) {
  const auto grid = grid_of(options);
  EvalOptions eval;
  eval.plan = sweep_plan(options);
  eval.output = options.runs_folder_or_default();
  eval.resume = options.resume;
  eval.start_afresh = true;
  eval.device = options.device;
  eval.batch = options.batch;
  eval.show_progress = options.show_progress;
  // The defaults of the model swept (SD-512's for an SD model, not the small model's).
  const auto scale = solvers::scale_for(model::describe_model(options.model).config);
  const auto run = run_evaluation(eval);
  if (!run.complete)
    throw Error("sweep: stopped before every grid point ran (continue with --resume)");
  const auto& plan = eval.plan;
  const auto records = index_records(
      plan, read_results((fs::path(eval.output) / "results.jsonl").string()).records, eval.output);

  const auto& axes = grid.axes;
  std::ostringstream table;
  table << "| task |";
  for (const auto& axis : axes) table << " " << axis.name << " |";
  table << " PSNR (dB) | SSIM | residual ‖y − A(x)‖ | s / image |\n|---|";
  for (size_t i = 0; i < axes.size(); ++i) table << "---|";
  table << "---|---|---|---|\n";
  auto runs = nlohmann::json::array();
  // The plot: x = the first axis; a series per task and combination of the other axes.
  io::LinePlot plot;
  plot.title = options.method + ": PSNR against " + axes[0].name;
  plot.x_label = axes[0].name;
  plot.y_label = "PSNR (dB), mean ± std over images";
  std::map<std::string, size_t> series_of;
  for (const auto& task : plan.tasks)
    for (size_t p = 0; p < grid.points.size(); ++p) {
      const auto& point = grid.points[p];
      nlohmann::json point_json;
      for (size_t k = 0; k < axes.size(); ++k) point_json[axes[k].name] = point.values[k];
      for (const auto& [name, value] : grid.fixed) point_json[name] = value;
      std::vector<double> psnr, ssim, residual, seconds;
      for (const auto& image : plan.images) {
        const auto& record = records.at(image.name + "|" + task + "|" + point.label);
        nlohmann::json run = {{"task", task}, {"image", image.path}, {"point", point_json}};
        if (record.at("status") == "ok") {
          for (const char* field : {"psnr", "ssim", "data_residual", "seconds"})
            run[field] = record.at(field);
          psnr.push_back(record.at("psnr"));
          ssim.push_back(record.at("ssim"));
          residual.push_back(record.at("data_residual"));
          seconds.push_back(record.at("seconds"));
        } else {
          run["diverged"] = record.at("error");  // a grid point may be too aggressive
        }
        runs.push_back(run);
      }
      std::string label = task;
      for (size_t k = 1; k < axes.size(); ++k)
        label += ", " + axes[k].name + " " + value_text(point.values[k]);
      auto [it, added] = series_of.emplace(label, plot.series.size());
      if (added) plot.series.push_back({label, {}, {}, {}});
      auto& series = plot.series[it->second];
      series.x.push_back(point.values[0]);
      series.y.push_back(psnr.empty() ? NAN : mean_std(psnr).mean);  // all diverged: a gap
      series.y_error.push_back(mean_std(psnr).std);

      table << "| " << task << " |";
      for (const double v : point.values) table << " " << value_text(v) << " |";
      if (psnr.size() < plan.images.size())
        table << " diverged on " << plan.images.size() - psnr.size() << " of "
              << plan.images.size();
      if (psnr.empty()) {
        table << " | | | |\n";
        continue;
      }
      table << " " << pm(psnr, 2) << " | " << pm(ssim, 3) << " | " << pm(residual, 3) << " | "
            << std::fixed << std::setprecision(1) << mean_std(seconds).mean << " |\n";
    }
  const auto defaults = solvers::default_hyperparameters(options.method, scale);
  io::write_json(options.output + ".json", {{"method", options.method},
                                            {"model", options.model},
                                            {"tasks", plan.tasks},
                                            {"grid", options.grid},
                                            {"set", options.set},
                                            {"noise", options.noise},
                                            {"seed", options.seed},
                                            {"precision", options.precision},
                                            {"vae_precision", options.vae_precision},
                                            {"runs_folder", absolute(eval.output)},
                                            {"defaults", defaults.to_json()},
                                            {"runs", runs}});
  SweepReport report;
  report.markdown = table.str();
  io::write_text(options.output + ".md", report.markdown);
  // Values spanning decades (learning rates, λ) read better on a log axis; ∞ is left out of the
  // plot (it is in the table).
  double lo = INFINITY, hi = 0;
  for (double v : axes[0].values)
    if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  plot.log_x = lo > 0 && hi / lo >= 20;
  try {
    io::write_svg(options.output + ".svg", plot);
    report.plot = options.output + ".svg";
  } catch (const Error& e) {
    report.plot_error = e.what();
  }
  return report;
}

}  // namespace p2l::eval
