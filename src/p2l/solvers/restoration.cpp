#include "p2l/solvers/restoration.h"

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "p2l/io/image.h"
#include "p2l/metrics/image_quality.h"
#include "p2l/operators/naive.h"
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
    if (!solver->parameters().has(name))
      throw Error("--" + name + " is not a hyperparameter of " + request.method + " (its: " + [&] {
        std::string names;
        for (const auto& h : solver->parameters().table())
          names += (names.empty() ? "" : ", ") + h.name;
        return names;
      }() + ")");
    solver->parameters().set(name, value, request.method);
  }
  return solver;
}

RestoreOutcome restore(model::StableDiffusion& model, const operators::Measurement& measurement,
                       const RestoreRequest& request) {
  auto solver = solver_for(request, model, measurement);
  Problem problem;
  problem.model = &model;
  problem.op = measurement.op;
  problem.y = measurement.y.to(model.device(), model.dtype());
  problem.height = measurement.height;
  problem.width = measurement.width;
  problem.seed = request.seed;
  problem.prompt = request.prompt;

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
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  torch::NoGradGuard no_grad;
  out.image = out.solution.image.clamp(-1, 1);
  const double residual = (problem.y - measurement.op->forward(out.image)).norm().item<double>();
  auto& r = out.report;
  r["method"] = solver->name();
  r["model"] = model.source;
  r["task"] = measurement.op->kind();
  r["operator"] = measurement.op->to_json();
  r["noise"] = measurement.noise.to_json();
  r["measurement_seed"] = measurement.seed;
  r["seed"] = request.seed;
  r["prompt"] = request.prompt;
  r["parameters"] = solver->parameters().to_json();
  r["network_evaluations"] = out.solution.counts.to_json();
  r["seconds"] = seconds;
  r["seconds_per_step"] = seconds / steps;
  r["peak_memory_mib"] = peak_memory_mib();
  r["device"] = model.device().str();
  r["data_residual"] = residual;
  r["data_residual_per_step"] = out.solution.data_residual;
  if (!out.solution.diagnostics.empty()) r["diagnostics"] = out.solution.diagnostics;
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
    r["naive_psnr"] = metrics::psnr(naive, truth);
    r["naive_ssim"] = metrics::ssim(naive, truth);
    const double reference = autoencoded_residual(model, measurement, truth);
    r["reference_residual"] = reference;
    if (const auto ratio = fit_ratio(residual, reference)) r["fit_ratio"] = *ratio;
  }
  return out;
}

}  // namespace p2l::solvers
