// `p2l sweep`: a grid over hyperparameters of one method on one or more tasks and images; each
// grid point's mean ± std PSNR / SSIM, time and data residual, as a markdown table and JSON, and
// an SVG plot of PSNR against the first grid axis (one line per task and value of the others).
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "p2l/error.h"
#include "p2l/eval/inputs.h"
#include "p2l/eval/statistics.h"
#include "p2l/io/image.h"
#include "p2l/io/json_file.h"
#include "p2l/io/svg_plot.h"
#include "p2l/model/checkpoint.h"
#include "p2l/operators/presets.h"
#include "p2l/solvers/restoration.h"

namespace p2l::cli {

namespace fs = std::filesystem;
namespace ops = p2l::operators;

namespace {

struct SweepArgs {
  std::string model, method = "p2l", output = "sweep";
  ComputeFlags compute;
  std::vector<std::string> tasks = {"sr"}, grids, images, fixed;
  double noise = 0.05;
  uint64_t seed = 0;
};

struct Axis {
  std::string name;
  std::vector<double> values;
};

Axis parse_axis(const std::string& spec) {
  const auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    throw Error("--grid '" + spec + "': expected NAME=V1,V2,...");
  Axis axis{spec.substr(0, eq), {}};
  std::stringstream values(spec.substr(eq + 1));
  for (std::string v; std::getline(values, v, ',');)
    axis.values.push_back(solvers::parse_hyperparameter_value(v, "--grid " + axis.name));
  return axis;
}

std::string pm(const std::vector<double>& v, int precision) {
  const auto [m, s] = eval::mean_std(v);
  std::ostringstream o;
  o << std::fixed << std::setprecision(precision) << m << " ± " << s;
  return o.str();
}

std::string value_text(double v) {
  if (std::isinf(v)) return "inf";
  std::ostringstream o;
  o << v;
  return o.str();
}

}  // namespace

void add_sweep_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "sweep", "Grid over a method's hyperparameters on tasks × images: mean ± std PSNR/SSIM, "
               "time and data residual per grid point (OUT.md, OUT.json)");
  auto a = std::make_shared<SweepArgs>();
  cmd->add_option("-m,--model", a->model, "Model folder")->required();
  cmd->add_option("--method", a->method, "Method");
  cmd->add_option("--tasks", a->tasks, "Tasks (" + ops::task_names() + ")")->delimiter(',');
  cmd->add_option("--grid", a->grids, "NAME=V1,V2,... (repeat for a product grid)")->required();
  cmd->add_option("--set", a->fixed, "NAME=VALUE held fixed (repeatable)");
  cmd->add_option("--images", a->images, "Images or folders (default: the model's test_images)");
  cmd->add_option("--noise", a->noise, "Gaussian measurement noise σ_y");
  cmd->add_option("--seed", a->seed, "Seed of the measurements and the solvers");
  cmd->add_option("-o,--output", a->output, "Output base: OUT.md and OUT.json");
  add_compute_flags(cmd, a->compute);
  cmd->callback([a] {
    std::vector<Axis> axes;
    for (const auto& g : a->grids) axes.push_back(parse_axis(g));
    std::map<std::string, double> fixed;
    for (const auto& f : a->fixed) {
      auto axis = parse_axis(f);
      if (axis.values.size() != 1) throw Error("--set " + f + ": one value expected");
      fixed[axis.name] = axis.values[0];
    }
    // Names and values checked before the model loads (names do not depend on its scale).
    auto defaults = solvers::default_hyperparameters(a->method, solvers::Scale::kSmall);
    for (const auto& axis : axes) {
      defaults.require(axis.name, "--grid " + axis.name);
      for (const double v : axis.values) defaults.set(axis.name, v, "--grid");
    }
    for (const auto& [name, value] : fixed) {
      defaults.require(name, "--set " + name);
      defaults.set(name, value, "--set");
    }
    const auto images =
        eval::collect_images(a->images, (fs::path(a->model) / "test_images").string());
    const auto load = load_options(a->compute);
    auto model = model::load_stable_diffusion(a->model, load);

    // Grid points: the product of the axes, first axis slowest.
    std::vector<std::map<std::string, double>> points(1, fixed);
    for (const auto& axis : axes) {
      std::vector<std::map<std::string, double>> next;
      for (const auto& p : points)
        for (double v : axis.values) {
          auto q = p;
          q[axis.name] = v;
          next.push_back(q);
        }
      points = next;
    }
    std::ostringstream table;
    table << "| task |";
    for (const auto& axis : axes) table << " " << axis.name << " |";
    table << " PSNR (dB) | SSIM | residual ‖y − A(x)‖ | s / image |\n|---|";
    for (size_t i = 0; i < axes.size(); ++i) table << "---|";
    table << "---|---|---|---|\n";
    auto runs = nlohmann::json::array();
    // The plot: x = the first axis; a series per task and combination of the other axes.
    io::LinePlot plot;
    plot.title = a->method + ": PSNR against " + (axes.empty() ? "" : axes[0].name);
    plot.x_label = axes.empty() ? "" : axes[0].name;
    plot.y_label = "PSNR (dB), mean ± std over images";
    std::map<std::string, size_t> series_of;
    auto add_to_plot = [&](const std::string& task, const std::map<std::string, double>& point,
                           const std::vector<double>& psnr) {
      if (axes.empty()) return;
      std::string label = task;
      for (size_t k = 1; k < axes.size(); ++k)
        label += ", " + axes[k].name + " " + value_text(point.at(axes[k].name));
      auto [it, added] = series_of.emplace(label, plot.series.size());
      if (added) plot.series.push_back({label, {}, {}, {}});
      auto& series = plot.series[it->second];
      const auto stats = eval::mean_std(psnr);
      series.x.push_back(point.at(axes[0].name));
      series.y.push_back(psnr.empty() ? NAN : stats.mean);  // all diverged: a gap
      series.y_error.push_back(stats.std);
    };
    const size_t total = a->tasks.size() * points.size() * images.size();
    size_t done = 0;
    for (const auto& task : a->tasks) {
      std::vector<ops::Measurement> measurements;
      std::vector<torch::Tensor> cleans;
      for (size_t i = 0; i < images.size(); ++i) {
        auto x = io::load_image(images[i]);
        measurements.push_back(eval::measure_task(x, task, a->noise, a->seed + i));
        cleans.push_back(x);
      }
      for (const auto& point : points) {
        std::vector<double> psnr, ssim, residual, seconds;
        for (size_t i = 0; i < images.size(); ++i) {
          solvers::RestoreRequest request;
          request.method = a->method;
          request.overrides = point;
          request.seed = a->seed + i;
          request.ground_truth = cleans[i];
          request.show_progress = false;
          nlohmann::json run = {{"task", task}, {"image", images[i]}, {"point", point}};
          try {
            auto out = solvers::restore(model, measurements[i], request);
            psnr.push_back(out.report["psnr"]);
            ssim.push_back(out.report["ssim"]);
            residual.push_back(out.report["data_residual"]);
            seconds.push_back(out.report["seconds"]);
            run["psnr"] = out.report["psnr"];
            run["ssim"] = out.report["ssim"];
            run["data_residual"] = out.report["data_residual"];
            run["seconds"] = out.report["seconds"];
          } catch (const solvers::DivergenceError& e) {
            run["diverged"] = e.what();  // a grid point may be too aggressive: record it
          }
          runs.push_back(run);
          std::cerr << "sweep " << ++done << "/" << total << "\r" << std::flush;
        }
        add_to_plot(task, point, psnr);
        table << "| " << task << " |";
        for (const auto& axis : axes) table << " " << value_text(point.at(axis.name)) << " |";
        if (psnr.size() < images.size())
          table << " diverged on " << images.size() - psnr.size() << " of " << images.size();
        if (psnr.empty()) {
          table << " | | | |\n";
          continue;
        }
        table << " " << pm(psnr, 2) << " | " << pm(ssim, 3) << " | " << pm(residual, 3) << " | "
              << std::fixed << std::setprecision(1) << eval::mean_std(seconds).mean << " |\n";
      }
    }
    std::cerr << "\n";
    // The defaults of the model swept (SD-512's for an SD model, not the small model's).
    auto parameters = solvers::default_hyperparameters(a->method, solvers::scale_for(model));
    io::write_json(a->output + ".json",
                   {{"method", a->method}, {"model", a->model}, {"tasks", a->tasks},
                    {"grid", a->grids}, {"set", a->fixed}, {"noise", a->noise},
                    {"seed", a->seed}, {"defaults", parameters.to_json()}, {"runs", runs}});
    io::write_text(a->output + ".md", table.str());
    std::cout << table.str() << "\nwrote " << a->output << ".md, " << a->output << ".json";
    if (!axes.empty()) {
      // Values spanning decades (learning rates, λ) read better on a log axis; ∞ is left out of
      // the plot (it is in the table).
      double lo = INFINITY, hi = 0;
      for (double v : axes[0].values)
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
      plot.log_x = lo > 0 && hi / lo >= 20;
      try {
        io::write_svg(a->output + ".svg", plot);
        std::cout << " and " << a->output << ".svg";
      } catch (const Error& e) {
        std::cout << " (no plot: " << e.what() << ")";
      }
    }
    std::cout << "\n";
  });
}

}  // namespace p2l::cli
