#include "p2l/solvers/restoration.h"

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "p2l/io/image.h"
#include "p2l/metrics/image_quality.h"
#include "p2l/model/memory.h"
#include "p2l/model/precision.h"
#include "p2l/operators/naive.h"
#include "p2l/operators/stacked.h"
#include "p2l/progress.h"
#include "p2l/solvers/fit.h"

namespace p2l::solvers {

double peak_memory_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // Linux reports KiB
}

torch::Tensor measurement_ground_truth(const operators::Measurement& m) {
  if (m.source_image.empty() || !std::filesystem::exists(m.source_image)) return {};
  auto x = io::load_image(m.source_image);
  if (x.size(2) != m.height || x.size(3) != m.width) return {};
  return x;
}

std::unique_ptr<Solver> solver_for(const RestoreRequest& request,
                                   const model::StableDiffusion& model,
                                   const operators::Measurement& measurement) {
  auto solver = make_solver(request.method, scale_for(model), measurement.op->kind());
  for (const auto& [name, value] : request.overrides) {
    solver->parameters().require(name, "--" + name);
    solver->parameters().set(name, value, request.method);
  }
  return solver;
}

namespace {

// The fields of a report that describe the run: method, model, measurement, parameters,
// evaluations, time and memory, device and precision.
nlohmann::json run_report(const model::StableDiffusion& model,
                          const operators::Measurement& measurement, const Solver& solver,
                          const RestoreRequest& request, uint64_t seed, const NetworkCounts& counts,
                          double seconds) {
  const int64_t steps = solver.parameters().get_int("steps");
  nlohmann::json r;
  r["method"] = solver.name();
  r["model"] = model.source;
  r["task"] = measurement.op->kind();
  r["operator"] = measurement.op->to_json();
  r["noise"] = measurement.noise.to_json();
  r["measurement_seed"] = measurement.seed;
  r["seed"] = seed;
  r["prompt"] = request.prompt;
  r["parameters"] = solver.parameters().to_json();
  r["network_evaluations"] = counts.to_json();
  r["seconds"] = seconds;
  r["seconds_per_step"] = seconds / steps;
  r["peak_memory_mib"] = peak_memory_mib();
  r["device"] = model.device().str();
  r["precision"] = model::precision_name(model::precision_of(model.dtype()));
  return r;
}

// Sample i's residual trace and method diagnostics.
void add_sample_traces(nlohmann::json& r, const Solution& solution, int64_t i) {
  r["data_residual_per_step"] = solution.data_residual.at(i);
  if (!solution.diagnostics.at(i).empty()) r["diagnostics"] = solution.diagnostics[i];
}

Problem problem_for(model::StableDiffusion& model, const operators::Measurement& measurement,
                    const RestoreRequest& request) {
  auto problem = problem_of(model, measurement, request.seed);
  problem.prompt = request.prompt;
  return problem;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

RestoreOutcome restore(model::StableDiffusion& model, const operators::Measurement& measurement,
                       const RestoreRequest& request) {
  auto solver = solver_for(request, model, measurement);
  auto problem = problem_for(model, measurement, request);
  if (request.samples < 1) throw Error("--samples must be at least 1");
  model::check_run_fits(model.config, request.samples, measurement.height, measurement.width,
                        model.dtype(), model.device(), "restore");
  if (request.samples > 1)
    for (int64_t i = 0; i < request.samples; ++i)
      problem.seeds.push_back(request.seed + 2 * static_cast<uint64_t>(i));

  const int64_t steps = solver->parameters().get_int("steps");
  Progress progress(request.method, steps, request.show_progress);
  auto observer = [&](const StepReport& s) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "|y-A(x)| %.4f", s.data_residual);
    progress.update(s.step, buf);
    if (request.observer) request.observer(s);
  };
  const auto start = std::chrono::steady_clock::now();
  RestoreOutcome out;
  out.solution = solver->solve(problem, observer);
  progress.finish();
  const double seconds = seconds_since(start);

  torch::NoGradGuard no_grad;
  const int64_t n = request.samples;
  out.samples = out.solution.image.clamp(-1, 1);
  out.image = n == 1 ? out.samples : out.samples.mean({0}, /*keepdim=*/true);
  // The samples' standard deviation per pixel (unbiased: n − 1).
  if (n > 1) out.spread = ((out.samples - out.image).pow(2).sum({0}, true) / (n - 1)).sqrt();
  auto residual_of = [&](const torch::Tensor& x) {
    return (problem.y - measurement.op->forward(x)).norm().item<double>();
  };
  const double residual = residual_of(out.image);
  auto& r = out.report;
  r = run_report(model, measurement, *solver, request, request.seed, out.solution.counts, seconds);
  r["data_residual"] = residual;
  if (n == 1) {
    add_sample_traces(r, out.solution, 0);
  } else {
    r["samples"] = n;
    // Mean over the pixels of the per-pixel standard deviation (image units, [-1, 1] scale).
    r["spread_mean"] = out.spread.mean().item<double>();
    auto list = nlohmann::json::array();
    for (int64_t i = 0; i < n; ++i) {
      nlohmann::json s = {{"seed", request.seed + 2 * static_cast<uint64_t>(i)},
                          {"data_residual", residual_of(out.samples.slice(0, i, i + 1))}};
      add_sample_traces(s, out.solution, i);
      list.push_back(s);
    }
    r["per_sample"] = list;
  }
  auto truth =
      request.ground_truth.defined() ? request.ground_truth : measurement_ground_truth(measurement);
  if (truth.defined()) {
    if (truth.sizes() != out.image.sizes())
      throw Error("ground truth is " + c10::str(truth.sizes()) + " but the restored image is " +
                  c10::str(out.image.sizes()));
    auto image = out.image.to(torch::kCPU, torch::kFloat);
    auto naive = operators::naive_reconstruction(*measurement.op, measurement.y.to(torch::kFloat),
                                                 measurement.height, measurement.width);
    r["psnr"] = metrics::psnr(image, truth);
    r["ssim"] = metrics::ssim(image, truth);
    for (int64_t i = 0; n > 1 && i < n; ++i) {
      const auto sample = out.samples.slice(0, i, i + 1).to(torch::kCPU, torch::kFloat);
      r["per_sample"][i]["psnr"] = metrics::psnr(sample, truth);
      r["per_sample"][i]["ssim"] = metrics::ssim(sample, truth);
    }
    r["naive_psnr"] = metrics::psnr(naive, truth);
    r["naive_ssim"] = metrics::ssim(naive, truth);
    const double reference = autoencoded_residual(model, measurement, truth);
    r["reference_residual"] = reference;
    if (const auto ratio = fit_ratio(residual, reference)) r["fit_ratio"] = *ratio;
  }
  return out;
}

std::vector<RestoreOutcome> restore_batch(
    model::StableDiffusion& model, const std::vector<operators::Measurement>& measurements,
    const RestoreRequest& request, const std::vector<uint64_t>& seeds) {
  const auto n = static_cast<int64_t>(measurements.size());
  if (n == 0 || seeds.size() != measurements.size())
    throw Error("restore_batch: one seed per measurement needed");
  auto solver = solver_for(request, model, measurements.front());
  auto problem = problem_for(model, measurements.front(), request);
  std::vector<std::shared_ptr<const operators::Operator>> ops;
  std::vector<torch::Tensor> ys;
  for (const auto& m : measurements) {
    if (m.height != problem.height || m.width != problem.width)
      throw Error("restore_batch: measurements of different image sizes");
    ops.push_back(m.op);
    ys.push_back(m.y.to(model.device(), model.arithmetic_dtype()));
  }
  problem.op = operators::stack_operators(ops);
  problem.y = torch::cat(ys, 0);
  problem.seeds = n > 1 ? seeds : std::vector<uint64_t>{};
  problem.seed = seeds.front();
  const auto start = std::chrono::steady_clock::now();
  const auto solution = solver->solve(problem);
  const double seconds = seconds_since(start) / static_cast<double>(n);

  torch::NoGradGuard no_grad;
  std::vector<RestoreOutcome> outcomes;
  for (int64_t i = 0; i < n; ++i) {
    const auto& m = measurements[i];
    RestoreOutcome out;
    out.solution = solution.sample(i);
    out.samples = out.image = out.solution.image.clamp(-1, 1);
    auto& r = out.report;
    r = run_report(model, m, *solver, request, seeds[i], solution.counts, seconds);
    r["batch"] = n;  // "seconds": the batch's time shared out
    r["data_residual"] = (ys[i] - m.op->forward(out.image)).norm().item<double>();
    add_sample_traces(r, solution, i);
    outcomes.push_back(std::move(out));
  }
  return outcomes;
}

}  // namespace p2l::solvers
