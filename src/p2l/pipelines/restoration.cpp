#include "p2l/pipelines/restoration.h"

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "p2l/io/image.h"
#include "p2l/io/json_file.h"
#include "p2l/io/montage.h"
#include "p2l/io/safetensors.h"
#include "p2l/metrics/image_quality.h"
#include "p2l/model/memory.h"
#include "p2l/model/precision.h"
#include "p2l/operators/naive.h"
#include "p2l/operators/stacked.h"
#include "p2l/pipelines/fit.h"
#include "p2l/progress.h"

namespace p2l::pipelines {

namespace fs = std::filesystem;

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

bool RestorationReport::did_not_fit() const { return fit_ratio && *fit_ratio > kMisfitRatio; }

namespace {

void put_traces(nlohmann::json& j, const SampleReport& s) {
  j["data_residual_per_step"] = s.data_residual_per_step;
  if (!s.diagnostics.empty()) j["diagnostics"] = s.diagnostics;
}

void put_quality(nlohmann::json& j, const std::optional<ImageQuality>& q,
                 const std::string& prefix = "") {
  if (!q) return;
  j[prefix + "psnr"] = q->psnr;
  j[prefix + "ssim"] = q->ssim;
}

}  // namespace

nlohmann::json RestorationReport::to_json() const {
  nlohmann::json r;
  r["method"] = method;
  r["model"] = model;
  r["task"] = task;
  r["operator"] = op;
  r["noise"] = noise;
  r["measurement_seed"] = measurement_seed;
  r["seed"] = seed;
  r["prompt"] = prompt;
  r["parameters"] = parameters.to_json();
  r["network_evaluations"] = counts.to_json();
  r["seconds"] = seconds;
  r["seconds_per_step"] = seconds_per_step;
  r["peak_memory_mib"] = peak_memory_mib;
  r["device"] = device;
  r["precision"] = precision;
  r["vae_precision"] = vae_precision;
  if (batch > 0) r["batch"] = batch;  // "seconds": the batch's time shared out
  r["data_residual"] = data_residual;
  if (samples.size() == 1) {
    put_traces(r, samples.front());
  } else {
    r["samples"] = samples.size();
    r["spread_mean"] = spread_mean;
    auto list = nlohmann::json::array();
    for (const auto& s : samples) {
      nlohmann::json j = {{"seed", s.seed}, {"data_residual", s.data_residual}};
      put_traces(j, s);
      put_quality(j, s.quality);
      list.push_back(j);
    }
    r["per_sample"] = list;
  }
  put_quality(r, quality);
  put_quality(r, naive_quality, "naive_");
  if (reference_residual) r["reference_residual"] = *reference_residual;
  if (fit_ratio) r["fit_ratio"] = *fit_ratio;
  if (!status.empty()) r["status"] = status;
  if (!files.output.empty()) {
    r["measurement"] = files.measurement;
    r["output"] = files.output;
  }
  if (!files.sample_images.empty()) {
    r["sample_images"] = files.sample_images;
    r["std_image"] = files.std_image;
    r["std_image_white"] = files.std_image_white;
    r["montage"] = files.montage;
    r["tensors"] = files.tensors;
  }
  return r;
}

std::unique_ptr<solvers::Solver> solver_for(const RestoreRequest& request,
                                            const model::StableDiffusion& model,
                                            const operators::Measurement& measurement) {
  auto solver =
      solvers::make_solver(request.method, solvers::scale_for(model), measurement.op->kind());
  for (const auto& [name, value] : request.overrides) {
    solver->parameters().require(name, "--" + name);
    solver->parameters().set(name, value, request.method);
  }
  return solver;
}

namespace {

// The fields of a report that describe the run: method, model, measurement, parameters,
// evaluations, time and memory, device and precision.
RestorationReport run_report(const model::StableDiffusion& model,
                             const operators::Measurement& measurement,
                             const solvers::Solver& solver, const RestoreRequest& request,
                             uint64_t seed, const solvers::NetworkCounts& counts, double seconds) {
  RestorationReport r;
  r.method = solver.name();
  r.model = model.source;
  r.task = measurement.op->kind();
  r.op = measurement.op->to_json();
  r.noise = measurement.noise.to_json();
  r.measurement_seed = measurement.seed;
  r.seed = seed;
  r.prompt = request.prompt;
  r.parameters = solver.parameters();
  r.counts = counts;
  r.seconds = seconds;
  r.seconds_per_step = seconds / static_cast<double>(solver.parameters().get_int("steps"));
  r.peak_memory_mib = peak_memory_mib();
  r.device = model.device().str();
  r.precision = model::precision_name(model::precision_of(model.dtype()));
  r.vae_precision = model::precision_name(model::precision_of(model.vae_dtype()));
  return r;
}

// Sample i's seed, residual, residual trace and method diagnostics.
SampleReport sample_report(const solvers::Solution& solution, int64_t i, uint64_t seed,
                           double residual) {
  return {seed, residual, solution.data_residual.at(i), solution.diagnostics.at(i), std::nullopt};
}

solvers::Problem problem_for(model::StableDiffusion& model,
                             const operators::Measurement& measurement,
                             const RestoreRequest& request) {
  auto problem = solvers::problem_of(model, measurement, request.seed);
  problem.prompt = request.prompt;
  return problem;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

ImageQuality quality_of(const torch::Tensor& image, const torch::Tensor& truth) {
  const auto x = image.to(torch::kCPU, torch::kFloat);
  return {metrics::psnr(x, truth), metrics::ssim(x, truth)};
}

}  // namespace

RestoreOutcome restore(model::StableDiffusion& model, const operators::Measurement& measurement,
                       const RestoreRequest& request) {
  auto solver = solver_for(request, model, measurement);
  auto problem = problem_for(model, measurement, request);
  if (request.samples < 1) throw Error("--samples must be at least 1");
  model::check_run_fits(model.config, request.samples, measurement.height, measurement.width,
                        model.vae_dtype(), model.device(), "restore");
  const int64_t n = request.samples;
  auto seed_of = [&](int64_t i) { return request.seed + 2 * static_cast<uint64_t>(i); };
  if (n > 1)
    for (int64_t i = 0; i < n; ++i) problem.seeds.push_back(seed_of(i));

  const int64_t steps = solver->parameters().get_int("steps");
  Progress progress(request.method, steps, request.show_progress);
  auto observer = [&](const solvers::StepReport& s) {
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
  out.samples = out.solution.image.clamp(-1, 1);
  out.image = n == 1 ? out.samples : out.samples.mean({0}, /*keepdim=*/true);
  // The samples' standard deviation per pixel (unbiased: n − 1).
  if (n > 1) out.spread = ((out.samples - out.image).pow(2).sum({0}, true) / (n - 1)).sqrt();
  auto residual_of = [&](const torch::Tensor& x) {
    return (problem.y - measurement.op->forward(x)).norm().item<double>();
  };
  auto& r = out.report;
  r = run_report(model, measurement, *solver, request, request.seed, out.solution.counts, seconds);
  r.data_residual = residual_of(out.image);
  for (int64_t i = 0; i < n; ++i)
    r.samples.push_back(
        sample_report(out.solution, i, seed_of(i),
                      n == 1 ? r.data_residual : residual_of(out.samples.slice(0, i, i + 1))));
  // Mean over the pixels of the per-pixel standard deviation (image units, [-1, 1] scale).
  if (n > 1) r.spread_mean = out.spread.mean().item<double>();
  auto truth =
      request.ground_truth.defined() ? request.ground_truth : measurement_ground_truth(measurement);
  if (truth.defined()) {
    if (truth.sizes() != out.image.sizes())
      throw Error("ground truth is " + c10::str(truth.sizes()) + " but the restored image is " +
                  c10::str(out.image.sizes()));
    const auto naive = operators::naive_reconstruction(
        *measurement.op, measurement.y.to(torch::kFloat), measurement.height, measurement.width);
    r.quality = quality_of(out.image, truth);
    for (int64_t i = 0; n > 1 && i < n; ++i)
      r.samples[i].quality = quality_of(out.samples.slice(0, i, i + 1), truth);
    r.naive_quality = quality_of(naive, truth);
    r.reference_residual = autoencoded_residual(model, measurement, truth);
    r.fit_ratio = fit_ratio(r.data_residual, *r.reference_residual);
  }
  return out;
}

std::vector<RestoreOutcome> restore_batch(model::StableDiffusion& model,
                                          const std::vector<operators::Measurement>& measurements,
                                          const RestoreRequest& request,
                                          const std::vector<uint64_t>& seeds,
                                          const std::vector<std::string>& prompts) {
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
  problem.prompts = prompts;
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
    r.prompt = problem.prompt_of(i);
    r.batch = n;
    r.data_residual = (ys[i] - m.op->forward(out.image)).norm().item<double>();
    r.samples.push_back(sample_report(solution, i, seeds[i], r.data_residual));
    outcomes.push_back(std::move(out));
  }
  return outcomes;
}

// --- p2l restore: files in, files out --------------------------------------------------------

namespace {

// OUT.png → OUT<suffix> beside it.
std::string beside(const std::string& output, const std::string& suffix) {
  fs::path p(output);
  return (p.parent_path() / (p.stem().string() + suffix)).string();
}

std::string absolute(const std::string& path) { return fs::absolute(path).string(); }

// The samples of a batched restoration beside OUT.png (the mean): each sample, the per-pixel
// standard deviation as a picture (black 0, white the largest; the scale goes in the report), a
// montage (samples | mean | spread) and every tensor in OUT.safetensors.
void write_samples(const std::string& output, const RestoreOutcome& out, RestorationFiles& files) {
  const int64_t n = out.samples.size(0);
  std::vector<torch::Tensor> row;
  for (int64_t i = 0; i < n; ++i) {
    const auto path = beside(output, ".sample-" + std::to_string(i) + ".png");
    io::save_png(path, out.samples.slice(0, i, i + 1));
    files.sample_images.push_back(absolute(path));
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
  io::save_safetensors(tensors_path,
                       {{"samples", out.samples}, {"mean", out.image}, {"std", out.spread}},
                       {{"format", "pt"}});
  files.std_image = absolute(spread_path);
  files.std_image_white = top;
  files.montage = absolute(montage_path);
  files.tensors = absolute(tensors_path);
}

// D(ẑ0) every `every` steps (and the last) into `dir`/step-NNNN.png.
solvers::StepObserver preview_writer(const std::string& dir, int64_t every) {
  fs::create_directories(dir);
  return [dir, every](const solvers::StepReport& s) {
    if (s.step % every != 0 && s.step != s.total) return;
    std::ostringstream name;
    name << "step-" << std::setw(4) << std::setfill('0') << s.step << ".png";
    io::save_png((fs::path(dir) / name.str()).string(), s.estimate.slice(0, 0, 1));
  };
}

// Keeps what finished of a diverged run: the last finite estimate (the samples of a batched
// solve side by side), and a report saying what happened.
void write_divergence(const RestoreFiles& files, const std::string& method,
                      const solvers::DivergenceError& e) {
  nlohmann::json report = {
      {"method", method}, {"status", "diverged"}, {"error", e.what()}, {"step", e.step()}};
  if (const auto& last = e.last_finite_estimate(); last.defined()) {
    const auto saved = beside(files.output, ".last-finite.png");
    std::vector<torch::Tensor> row;
    for (int64_t i = 0; i < last.size(0); ++i)
      row.push_back(last.slice(0, i, i + 1).to(torch::kCPU, torch::kFloat));
    io::save_png(saved, row.size() == 1 ? row.front() : io::montage({row}));
    report["last_finite_estimate"] = saved;
  }
  io::write_json(files.report_path(), report);
}

}  // namespace

std::string RestoreFiles::report_path() const {
  return report.empty() ? beside(output, ".json") : report;
}

void check_restore_files(const RestoreFiles& files) {
  io::check_writable(files.output);
  if (!files.report.empty()) io::check_writable(files.report);
  // `--measurement photo.json -o photo.png` would put the report over the measurement.
  const auto measurement = fs::absolute(files.measurement).lexically_normal();
  for (const auto& [written, flag] :
       {std::pair<std::string, std::string>{files.report_path(), "the report"},
        {files.output, "-o"}})
    if (fs::absolute(written).lexically_normal() == measurement)
      throw Error(flag + " (" + written + ") would overwrite the measurement " + files.measurement +
                  ": pick another -o or --report");
}

RestorationReport restore_files(model::StableDiffusion& model,
                                const operators::Measurement& measurement,
                                const RestoreFiles& files, RestoreRequest request) {
  check_restore_files(files);
  if (!files.ground_truth.empty()) request.ground_truth = io::load_image(files.ground_truth);
  if (files.preview_every > 0)
    request.observer = preview_writer(beside(files.output, ".preview"), files.preview_every);
  RestoreOutcome out;
  try {
    out = restore(model, measurement, request);
  } catch (const solvers::DivergenceError& e) {
    write_divergence(files, request.method, e);
    throw Error(std::string(e.what()) + " (report: " + files.report_path() + ")");
  }
  io::save_png(files.output, out.image);
  auto& report = out.report;
  if (request.samples > 1) write_samples(files.output, out, report.files);
  report.status = "finished";
  report.files.measurement = absolute(files.measurement);
  report.files.output = absolute(files.output);
  io::write_json(files.report_path(), report.to_json());
  return report;
}

}  // namespace p2l::pipelines
