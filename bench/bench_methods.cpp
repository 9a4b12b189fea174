// What one DDIM step of each solver costs, and where the time goes: wall time per step split by
// activity (solvers::ActivityTimes), network evaluations per step by kind, peak memory, FLOPs
// per step counted from the layer shapes (model/flops.h) and the achieved FLOP/s as a share of
// the machine's peak (a matrix product, a convolution) measured in the same run. Per-network
// micro-benchmarks split the solvers' backward time (one pass through several networks) by network.
// Optionally the same for SD v1's full configuration with random weights at 256² and 512². Prints
// markdown; the numbers of the development machine and how to read them are in docs/bench.md.
//
//   ./build/bench/bench_methods [--model models/emoji-64] [--task sr] [--methods p2l,ldps,...]
//       [--steps 20] [--warmup 2] [--repeats 1] [--threads 0] [--blas-threads N]
//       [--device cpu|cuda] [--peak-size 2048] [--no-micro] [--no-profile] [--check-flops]
//       [--channels-last] [--no-bundled] [--precision fp32,bf16,fp16] [--batch 1,8,64]
//       [--sd 256,512] [--sd-methods ldps,p2l] [--sd-steps 1] [--sd-warmup 0] [--sd-micro]
//       [--cudnn-benchmark]
// Each precision in --precision is a separate table (the networks' type; model/precision.h).
// --batch: the bundled model's batched solves (B posterior samples at once), samples per second,
// instead of its per-activity tables.
#include <CLI/CLI.hpp>
#include <dlfcn.h>
#include <malloc.h>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#if P2L_BENCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "p2l/error.h"
#include "p2l/eval/inputs.h"
#include "p2l/io/image.h"
#include "p2l/model/checkpoint.h"
#include "p2l/model/attention.h"
#include "p2l/model/flops.h"
#include "p2l/model/precision.h"
#include "p2l/operators/measurement.h"
#include "p2l/operators/presets.h"
#include "p2l/solvers/guidance.h"
#include "p2l/allocator.h"
#include "p2l/threads.h"

using namespace p2l;
using Clock = std::chrono::steady_clock;
using solvers::Activity;

namespace {

struct Options {
  std::string model_dir = "models/emoji-64";
  std::string task = "sr";
  std::vector<std::string> methods;  // empty = all
  int64_t steps = 20, warmup = 2, repeats = 1;
  int threads = 0, blas_threads = 0;  // 0: p2l's setting (set_threads)
  std::string device = "cpu";
  int64_t peak_size = 2048;
  bool bundled = true, micro = true, profile = true, check_flops = false;
  // An experiment, not p2l's setting: channels-last weights send LibTorch's CPU convolutions to
  // oneDNN, which changes the results in the last bits (the checksum column shows it).
  bool channels_last = false;
  std::vector<int64_t> sd_sizes;
  std::vector<std::string> sd_methods;  // empty = all
  int64_t sd_steps = 1, sd_warmup = 0;
  bool sd_micro = false;
  bool cudnn_benchmark = false;  // cuDNN times its algorithms on first use of each shape
  std::vector<model::Precision> precisions = {model::Precision::kFloat32};
  std::optional<model::Precision> vae_precision;  // unset: p2l's default (model/checkpoint.h)
  std::vector<int64_t> batches;
};

Options parse(int argc, char** argv) {
  Options o;
  CLI::App app{"bench_methods: what one DDIM step of each solver costs, and where the time goes "
               "(docs/bench.md)"};
  bool no_bundled = false, no_micro = false, no_profile = false;
  std::vector<std::string> precisions;
  std::string vae_precision;
  const auto positive = CLI::PositiveNumber.description("");
  const auto non_negative = CLI::NonNegativeNumber.description("");
  app.add_option("--model", o.model_dir, "Model folder (its test_images/00_google.png is used)");
  app.add_option("--task", o.task, "Task of the measurement");
  app.add_option("--methods", o.methods, "Methods, comma-separated (default: all)")
      ->delimiter(',');
  app.add_option("--steps", o.steps, "Timed DDIM steps")->check(positive);
  app.add_option("--warmup", o.warmup, "Untimed steps first")->check(non_negative);
  app.add_option("--repeats", o.repeats, "Timed runs per method, the best kept")->check(positive);
  app.add_option("--threads", o.threads, "CPU threads (0: p2l's setting)")->check(non_negative);
  app.add_option("--blas-threads", o.blas_threads, "OpenBLAS threads (0: p2l's setting, 1)")
      ->check(non_negative);
  app.add_option("--device", o.device, "cpu or cuda");
  app.add_option("--peak-size", o.peak_size, "n of the n x n product that measures peak FLOP/s")
      ->check(positive);
  app.add_flag("--no-bundled", no_bundled, "Skip the bundled model");
  app.add_flag("--no-micro", no_micro, "Skip the per-network micro-benchmarks");
  app.add_flag("--no-profile", no_profile, "Skip the per-activity times");
  app.add_flag("--check-flops", o.check_flops, "Compare the FLOP counts with LibTorch's profiler");
  app.add_flag("--channels-last", o.channels_last, "Channels-last weights (an experiment)");
  app.add_option("--precision", precisions, "fp32, bf16, fp16: a table each (default fp32)")
      ->delimiter(',');
  app.add_option("--vae-precision", vae_precision,
                 "The autoencoder's (default: fp32 beside bf16/fp16 networks, as p2l runs)");
  app.add_option("--batch", o.batches,
                 "Batched solves of B samples on the bundled model, samples per second, "
                 "instead of its per-activity tables")
      ->delimiter(',')
      ->check(positive);
  app.add_option("--sd", o.sd_sizes, "SD v1's full configuration (random weights) at these sizes")
      ->delimiter(',')
      ->check(positive);
  app.add_option("--sd-methods", o.sd_methods, "Methods on SD (default: all)")->delimiter(',');
  app.add_option("--sd-steps", o.sd_steps, "Timed steps on SD")->check(positive);
  app.add_option("--sd-warmup", o.sd_warmup, "Untimed steps on SD")->check(non_negative);
  app.add_flag("--sd-micro", o.sd_micro, "Micro-benchmarks on SD too");
  app.add_flag("--cudnn-benchmark", o.cudnn_benchmark, "Let cuDNN time its algorithms");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::exit(app.exit(e));
  }
  o.bundled = !no_bundled;
  o.micro = !no_micro;
  o.profile = !no_profile;
  if (!precisions.empty()) {
    o.precisions.clear();
    for (const auto& p : precisions) o.precisions.push_back(model::parse_precision(p));
  }
  if (!vae_precision.empty())
    o.vae_precision = model::parse_precision(vae_precision, "--vae-precision");
  if (o.methods.empty()) o.methods = solvers::method_names();
  if (o.sd_methods.empty()) o.sd_methods = solvers::method_names();
  return o;
}

// --- the machine -------------------------------------------------------------------------------

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

// Debian's LibTorch runs matrix products through OpenBLAS, whose own thread pool p2l pins to one
// thread (threads.h); convolutions go through oneDNN or LibTorch's OpenMP threads.
int set_blas_threads(int n) {
  using SetThreads = void (*)(int);
  using GetThreads = int (*)();
  auto get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  const int before = get ? get() : 0;
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    set(n);
  return before;
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

double since_ms(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Best of `reps` float32 n×n products, as GFLOP/s (2n³ FLOPs each).
double matmul_gflops(int64_t n, const torch::Device& device, int reps) {
  torch::NoGradGuard no_grad;
  auto opts = torch::TensorOptions().dtype(torch::kFloat).device(device);
  auto a = torch::randn({n, n}, opts), b = torch::randn({n, n}, opts);
  auto c = torch::mm(a, b);
  synchronize(device);
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < reps; ++r) {
    const auto start = Clock::now();
    c = torch::mm(a, b);
    synchronize(device);
    best = std::min(best, since_ms(start));
  }
  return 2.0 * n * n * n / (best * 1e-3) / 1e9;
}

// Best of `reps` 3×3 convolutions, 256 → 256 channels on 64×64, as GFLOP/s: LibTorch sends
// these to oneDNN, whose kernels may use wider vector units than the BLAS library (on AVX-512
// CPUs they can beat the n×n product above).
double convolution_gflops(const torch::Device& device, int reps) {
  torch::NoGradGuard no_grad;
  auto opts = torch::TensorOptions().dtype(torch::kFloat).device(device);
  const int64_t c = 256, side = 64;
  auto x = torch::randn({1, c, side, side}, opts), w = torch::randn({c, c, 3, 3}, opts);
  auto y = torch::conv2d(x, w, {}, 1, 1);
  synchronize(device);
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < reps; ++r) {
    const auto start = Clock::now();
    y = torch::conv2d(x, w, {}, 1, 1);
    synchronize(device);
    best = std::min(best, since_ms(start));
  }
  return 2.0 * static_cast<double>(model::conv2d_macs(c, c, 3, side, side)) / (best * 1e-3) / 1e9;
}

// --- memory --------------------------------------------------------------------------------------

double status_mib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) / 1024;
  return 0;
}

// Hands freed heap back to the system and restarts the peak-RSS count (VmHWM) at the current
// RSS, so that each method's peak is its own (Linux: "5" in clear_refs).
#if P2L_BENCH_CUDA
// "cuda" without an index is the current device; the allocator wants the index itself.
c10::DeviceIndex cuda_index(const torch::Device& device) {
  return device.has_index() ? device.index() : c10::cuda::current_device();
}
#endif

void reset_peak_memory(const torch::Device& device) {
  malloc_trim(0);
  std::ofstream("/proc/self/clear_refs") << "5";
#if P2L_BENCH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(cuda_index(device));
#else
  (void)device;
#endif
}

double cuda_peak_mib(const torch::Device& device) {
#if P2L_BENCH_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(cuda_index(device));
    return static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0);  // aggregate
  }
#else
  (void)device;
#endif
  return 0;
}

// FNV-1a of a tensor's bytes: equal checksums before and after a change = bit-identical output.
uint64_t checksum(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU).contiguous();
  const auto* p = static_cast<const unsigned char*>(c.data_ptr());
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < c.nbytes(); ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// --- one model, one measurement ----------------------------------------------------------------

struct NetworkMacs {
  model::MacCount unet, encoder, decoder, text;
};

NetworkMacs network_macs(const model::ModelConfig& c, int64_t size) {
  const int64_t latent = size / c.vae.downsampling_factor();
  return {model::unet_macs(c.unet, latent, latent, c.text.max_positions),
          model::vae_encoder_macs(c.vae, size, size),
          model::vae_decoder_macs(c.vae, latent, latent),
          model::clip_text_macs(c.text, c.text.max_positions)};
}

struct Bench {
  std::string title;
  model::StableDiffusion* model;
  operators::Measurement measurement;
  int64_t size;
  torch::Device device;
  NetworkMacs macs;
  double peak_gflops;
};

struct PerStep {
  double unet_f = 0, unet_b = 0, dec_f = 0, dec_b = 0, enc_f = 0, enc_b = 0, op = 0;
};

struct MethodCost {
  std::string method;
  int64_t steps = 0;
  double ms_per_step = 0, text_ms = 0;
  solvers::ActivityTimes ms;  // per step
  PerStep evals;
  double gflop_per_step = 0;
  double base_rss = 0, peak_rss = 0, cuda_peak = 0;
  uint64_t latent_checksum = 0;
  std::string error;
};

solvers::Problem problem_for(const Bench& b, int64_t batch) {
  solvers::Problem p;
  for (int64_t i = 0; batch > 1 && i < batch; ++i) p.seeds.push_back(static_cast<uint64_t>(i));
  p.model = b.model;
  p.op = b.measurement.op;
  p.y = b.measurement.y.to(b.device, torch::kFloat);
  p.height = p.width = b.size;
  p.seed = 0;
  return p;
}

MethodCost run_method(const Bench& b, const std::string& method, int64_t steps, int64_t warmup,
                      int64_t repeats, bool profile, int64_t batch = 1) {
  MethodCost cost;
  cost.method = method;
  cost.steps = steps;
  auto solver =
      solvers::make_solver(method, solvers::scale_for(*b.model), b.measurement.op->kind());
  auto problem = problem_for(b, batch);
  try {
    if (warmup > 0) {
      solver->parameters().set("steps", static_cast<double>(warmup));
      solver->solve(problem);
    }
    solver->parameters().set("steps", static_cast<double>(steps));
    cost.ms_per_step = std::numeric_limits<double>::infinity();
    for (int64_t r = 0; r < repeats; ++r) {
      reset_peak_memory(b.device);
      const double base = status_mib("VmRSS");
      solvers::ActivityTimes times, at_last;
      times.synchronize_cuda = b.device.is_cuda();
      problem.profile = profile ? &times : nullptr;
      Clock::time_point last;
      // The steps end at the last observer call; the final decode D(z_0) comes after it.
      auto observer = [&](const solvers::StepReport& s) {
        if (s.step != s.total) return;
        synchronize(b.device);
        last = Clock::now();
        at_last = times;
      };
      const auto start = Clock::now();
      auto solution = solver->solve(problem, observer);
      const double text_ms = 1e3 * at_last[Activity::kTextEncoder];
      const double ms =
          (std::chrono::duration<double, std::milli>(last - start).count() - text_ms) / steps;
      const double peak = status_mib("VmHWM");
      if (ms < cost.ms_per_step) {
        cost.ms_per_step = ms;
        cost.text_ms = text_ms;
        for (size_t c = 0; c < solvers::kActivityCount; ++c)
          cost.ms.seconds[c] = 1e3 * at_last.seconds[c] / steps;
        cost.ms[Activity::kTextEncoder] = 0;
      }
      cost.base_rss = base;
      cost.peak_rss = std::max(cost.peak_rss, peak);
      cost.cuda_peak = std::max(cost.cuda_peak, cuda_peak_mib(b.device));
      cost.latent_checksum = checksum(solution.latent);
      const auto& c = solution.counts;
      const double n = static_cast<double>(steps);
      // run_ddim decodes the final latent once after the steps.
      cost.evals = {c.unet_forward / n,     c.unet_backward / n,   (c.decoder_forward - 1) / n,
                    c.decoder_backward / n, c.encoder_forward / n, c.encoder_backward / n,
                    c.operator_forward / n};
    }
  } catch (const c10::Error& e) {
    cost.error = e.what_without_backtrace();  // one line in the table, not LibTorch's stack
  } catch (const std::exception& e) {
    cost.error = e.what();
  }
  const auto& e = cost.evals;
  const auto& m = b.macs;
  cost.gflop_per_step =
      (e.unet_f * m.unet.forward_flops() + e.unet_b * m.unet.input_backward_flops() +
       e.dec_f * m.decoder.forward_flops() + e.dec_b * m.decoder.input_backward_flops() +
       e.enc_f * m.encoder.forward_flops() + e.enc_b * m.encoder.input_backward_flops()) /
      1e9;
  return cost;
}

void print_costs(const Bench& b, const std::vector<MethodCost>& costs, bool profile) {
  std::printf("\n#### %s: time per step (ms)\n\n", b.title.c_str());
  std::printf("| method | ms / step |");
  const Activity shown[] = {Activity::kUnetForward,    Activity::kDecoderForward,
                             Activity::kEncoderForward, Activity::kBackward,
                             Activity::kOperator,       Activity::kOptimiser};
  if (profile) {
    for (auto c : shown) std::printf(" %s |", solvers::activity_name(c));
    std::printf(" other | text encoder (once) |");
  }
  std::printf("\n|---|---|%s\n", profile ? "---|---|---|---|---|---|---|---|" : "");
  for (const auto& c : costs) {
    if (!c.error.empty()) {
      std::printf("| %s | failed: %s |\n", c.method.c_str(), c.error.c_str());
      continue;
    }
    std::printf("| %s | %.1f |", c.method.c_str(), c.ms_per_step);
    if (profile) {
      double sum = 0;
      for (auto comp : shown) {
        std::printf(" %.1f |", c.ms[comp]);
        sum += c.ms[comp];
      }
      std::printf(" %.1f | %.1f |", c.ms_per_step - sum, c.text_ms);
    }
    std::printf("\n");
  }
  std::printf("\n#### %s: evaluations, FLOPs and memory per step\n\n", b.title.c_str());
  std::printf(
      "| method | UNet f / b | decoder f / b | encoder f / b | A | GFLOP / step | "
      "GFLOP/s | %% of peak | peak RSS MiB (+ over start) |%s checksum of z_0 |\n"
      "|---|---|---|---|---|---|---|---|---|%s---|\n",
      b.device.is_cuda() ? " CUDA peak MiB |" : "", b.device.is_cuda() ? "---|" : "");
  for (const auto& c : costs) {
    if (!c.error.empty()) continue;
    const auto& e = c.evals;
    const double gflops = c.gflop_per_step / (c.ms_per_step * 1e-3);
    std::printf(
        "| %s | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.1f | %.2f | %.1f | %.1f | "
        "%.0f (+%.0f) |",
        c.method.c_str(), e.unet_f, e.unet_b, e.dec_f, e.dec_b, e.enc_f, e.enc_b, e.op,
        c.gflop_per_step, gflops, 100 * gflops / b.peak_gflops, c.peak_rss,
        c.peak_rss - c.base_rss);
    if (b.device.is_cuda()) std::printf(" %.0f |", c.cuda_peak);
    std::printf(" %016llx |\n", static_cast<unsigned long long>(c.latent_checksum));
  }
}

// --- per-network micro-benchmarks ---------------------------------------------------------------

struct Micro {
  std::string network, input;
  model::MacCount macs;
  double forward_ms = 0, inference_ms = 0, tracked_ms = 0, backward_ms = 0;  // best of repeats
};

// Forward without autograd (NoGradGuard, as the solvers' no-gradient parts run, and
// InferenceMode), forward recording the graph from the input (as the guided steps do), and the
// gradient with respect to that input (weights frozen: no weight gradients).
template <typename Forward>
Micro time_network(const std::string& name, const torch::Tensor& input, const model::MacCount& macs,
                   const torch::Device& device, int64_t warmup, int64_t repeats, Forward&& forward,
                   bool backward = true) {
  Micro m{name, c10::str(input.sizes()), macs};
  m.forward_ms = m.inference_ms = m.tracked_ms = m.backward_ms =
      std::numeric_limits<double>::infinity();
  for (int64_t r = 0; r < warmup + repeats; ++r) {
    auto start = Clock::now();
    {
      torch::NoGradGuard no_grad;
      forward(input);
      synchronize(device);
    }
    const double f = since_ms(start);
    start = Clock::now();
    {
      c10::InferenceMode inference;
      forward(input);
      synchronize(device);
    }
    const double inf = since_ms(start);
    double t = 0, bw = 0;
    if (backward) {
      auto x = input.detach().requires_grad_(true);
      start = Clock::now();
      auto out = forward(x);
      synchronize(device);
      t = since_ms(start);
      start = Clock::now();
      torch::autograd::grad({out}, {x}, {torch::ones_like(out)});
      synchronize(device);
      bw = since_ms(start);
    }
    if (r < warmup) continue;
    m.forward_ms = std::min(m.forward_ms, f);
    m.inference_ms = std::min(m.inference_ms, inf);
    m.tracked_ms = std::min(m.tracked_ms, t);
    m.backward_ms = std::min(m.backward_ms, bw);
  }
  return m;
}

std::vector<Micro> micro_benchmarks(const Bench& b, int64_t warmup, int64_t repeats) {
  auto& sd = *b.model;
  const auto& c = sd.config;
  const int64_t latent = b.size / c.vae.downsampling_factor();
  auto opts = torch::TensorOptions().dtype(torch::kFloat).device(b.device);
  torch::manual_seed(0);
  auto z = torch::randn({1, c.unet.in_channels, latent, latent}, opts);
  auto x = torch::randn({1, c.vae.in_channels, b.size, b.size}, opts).clamp(-1, 1);
  torch::Tensor text;
  {
    torch::NoGradGuard no_grad;
    text = sd.encode_prompts({""});
  }
  auto t = torch::full({1}, 500, torch::TensorOptions().dtype(torch::kLong).device(b.device));
  auto ids = sd.tokenizer->tokenize_batch({""}, c.text.max_positions);
  std::vector<Micro> out;
  out.push_back(time_network("UNet", z, b.macs.unet, b.device, warmup, repeats,
                             [&](const torch::Tensor& v) { return sd.predict_noise(v, t, text); }));
  out.push_back(time_network("decoder", z, b.macs.decoder, b.device, warmup, repeats,
                             [&](const torch::Tensor& v) { return sd.decode(v); }));
  out.push_back(time_network("encoder", x, b.macs.encoder, b.device, warmup, repeats,
                             [&](const torch::Tensor& v) { return sd.encode(v); }));
  out.push_back(time_network(
      "text encoder", ids, b.macs.text, b.device, warmup, repeats,
      [&](const torch::Tensor& v) { return sd.encode_tokens(v); }, /*backward=*/false));
  return out;
}

void print_micro(const Bench& b, const std::vector<Micro>& micro) {
  std::printf("\n#### %s: one evaluation of each network (best of the repeats)\n\n",
              b.title.c_str());
  std::printf(
      "| network | input | GFLOP fwd | fwd ms (no grad) | fwd ms (inference mode) | "
      "fwd ms (graph) | GFLOP/s fwd | %% of peak | input-grad bwd ms | GFLOP bwd | "
      "GFLOP/s bwd | %% of peak |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& m : micro) {
    const double fwd = m.macs.forward_flops() / 1e9, bwd = m.macs.input_backward_flops() / 1e9;
    const double fwd_rate = fwd / (m.forward_ms * 1e-3);
    std::printf("| %s | %s | %.3f | %.2f | %.2f | ", m.network.c_str(), m.input.c_str(), fwd,
                m.forward_ms, m.inference_ms);
    if (m.tracked_ms > 0)
      std::printf("%.2f | %.1f | %.1f | %.2f | %.3f | %.1f | %.1f |\n", m.tracked_ms, fwd_rate,
                  100 * fwd_rate / b.peak_gflops, m.backward_ms, bwd, bwd / (m.backward_ms * 1e-3),
                  100 * bwd / (m.backward_ms * 1e-3) / b.peak_gflops);
    else
      std::printf("– | %.1f | %.1f | – | – | – | – |\n", fwd_rate, 100 * fwd_rate / b.peak_gflops);
  }
}

// The backward column of the solvers is one pass through several networks; the micro-benchmarks
// give each network's share: evaluations per step × that network's input-gradient time.
void print_backward_split(const Bench& b, const std::vector<MethodCost>& costs,
                          const std::vector<Micro>& micro) {
  auto bwd = [&](const std::string& name) {
    for (const auto& m : micro)
      if (m.network == name) return m.backward_ms;
    return 0.0;
  };
  std::printf(
      "\n#### %s: backward per step, measured and split by network from the "
      "micro-benchmarks (ms)\n\n",
      b.title.c_str());
  std::printf(
      "| method | measured | UNet | decoder | encoder | sum of the split |\n"
      "|---|---|---|---|---|---|\n");
  for (const auto& c : costs) {
    if (!c.error.empty()) continue;
    const double u = c.evals.unet_b * bwd("UNet"), d = c.evals.dec_b * bwd("decoder"),
                 e = c.evals.enc_b * bwd("encoder");
    std::printf("| %s | %.1f | %.1f | %.1f | %.1f | %.1f |\n", c.method.c_str(),
                c.ms[Activity::kBackward], u, d, e, u + d + e);
  }
}

void check_flops(const Bench& b) {
  auto& sd = *b.model;
  const auto& c = sd.config;
  const int64_t latent = b.size / c.vae.downsampling_factor();
  auto opts = torch::TensorOptions().dtype(torch::kFloat).device(b.device);
  torch::NoGradGuard no_grad;
  auto row = [](const char* name, const model::MacCount& analytic, const model::MacCount& traced) {
    std::printf("| %s | %s | %s | %s | %s | %s |\n", name,
                model::format_count(static_cast<double>(analytic.weights)).c_str(),
                model::format_count(static_cast<double>(analytic.attention)).c_str(),
                model::format_count(static_cast<double>(traced.weights)).c_str(),
                model::format_count(static_cast<double>(traced.attention)).c_str(),
                analytic == traced ? "yes" : "NO");
  };
  std::printf("\n#### %s: analytic MACs against the traced forward pass\n\n", b.title.c_str());
  std::printf(
      "| network | weights (analytic) | attention (analytic) | weights (traced) | "
      "attention (traced) | equal |\n|---|---|---|---|---|---|\n");
  auto text = sd.encode_prompts({""});
  auto z = torch::randn({1, c.unet.in_channels, latent, latent}, opts);
  auto t = torch::full({1}, 500, torch::TensorOptions().dtype(torch::kLong).device(b.device));
  {
    model::MacTracer tracer;
    sd.predict_noise(z, t, text);
    row("UNet", b.macs.unet, tracer.count());
  }
  {
    model::MacTracer tracer;
    sd.decode(z);
    row("decoder", b.macs.decoder, tracer.count());
  }
  {
    auto x = torch::zeros({1, c.vae.in_channels, b.size, b.size}, opts);
    model::MacTracer tracer;
    sd.encode(x);
    row("encoder", b.macs.encoder, tracer.count());
  }
  model::MacTracer tracer;
  sd.encode_prompts({""});
  row("text encoder", b.macs.text, tracer.count());
}

void run_bench(const Bench& b, const std::vector<std::string>& methods, int64_t steps,
               int64_t warmup, int64_t repeats, bool profile, bool micro, bool flops) {
  const auto& m = b.macs;
  std::printf(
      "\n### %s\n\nFLOPs per evaluation (forward / input-gradient backward): UNet %s / "
      "%s, decoder %s / %s, encoder %s / %s, text encoder %s (forward only).\n",
      b.title.c_str(), model::format_count(m.unet.forward_flops()).c_str(),
      model::format_count(m.unet.input_backward_flops()).c_str(),
      model::format_count(m.decoder.forward_flops()).c_str(),
      model::format_count(m.decoder.input_backward_flops()).c_str(),
      model::format_count(m.encoder.forward_flops()).c_str(),
      model::format_count(m.encoder.input_backward_flops()).c_str(),
      model::format_count(m.text.forward_flops()).c_str());
  std::printf(
      "\nms / step: wall time of the %lld measured steps (after a %lld-step warm-up "
      "solve), without the final decode and %s; best of %lld. Evaluations per step are "
      "forward / backward passes; FLOPs per step count each backward as the "
      "input-gradient pass (model/flops.h).\n",
      static_cast<long long>(steps), static_cast<long long>(warmup),
      profile ? "the text encoder (once per solve)"
              : "with the text encoder (the timers that separate it are off)",
      static_cast<long long>(repeats));
  std::fflush(stdout);
  if (flops) check_flops(b);
  std::vector<MethodCost> costs;
  for (const auto& method : methods) {
    costs.push_back(run_method(b, method, steps, warmup, repeats, profile));
    std::fprintf(stderr, "%s %s: %.1f ms/step\n", b.title.c_str(), method.c_str(),
                 costs.back().ms_per_step);
  }
  print_costs(b, costs, profile);
  std::fflush(stdout);
  if (micro) {
    auto micro_costs = micro_benchmarks(b, warmup > 0 ? 1 : 0, repeats);
    print_micro(b, micro_costs);
    if (profile) print_backward_split(b, costs, micro_costs);
  }
  std::fflush(stdout);
}

// Batched solves: B posterior samples of one measurement per solve; samples per second of a
// whole solve at `steps` steps (the text encoder and final decode aside), and the gain over B = 1.
void run_batches(const Bench& b, const std::vector<std::string>& methods,
                 const std::vector<int64_t>& batches, int64_t steps, int64_t warmup) {
  std::printf("\n#### %s: batched solves (%lld steps)\n\n| method | batch | ms / step | "
              "samples / s | × batch 1 |%s\n|---|---|---|---|---|%s\n",
              b.title.c_str(), static_cast<long long>(steps),
              b.device.is_cuda() ? " CUDA peak MiB |" : "", b.device.is_cuda() ? "---|" : "");
  for (const auto& method : methods) {
    double single = 0;
    for (const int64_t batch : batches) {
      const auto cost = run_method(b, method, steps, warmup, 1, false, batch);
      if (!cost.error.empty()) {
        std::printf("| %s | %lld | failed: %s |\n", method.c_str(),
                    static_cast<long long>(batch), cost.error.c_str());
        continue;
      }
      const double rate = batch / (cost.ms_per_step * steps * 1e-3);
      if (batch == 1) single = rate;
      std::printf("| %s | %lld | %.1f | %.2f | %s |", method.c_str(),
                  static_cast<long long>(batch), cost.ms_per_step, rate,
                  single > 0 ? (std::to_string(rate / single).substr(0, 5) + "×").c_str() : "–");
      if (b.device.is_cuda()) std::printf(" %.0f |", cost.cuda_peak);
      std::printf("\n");
      std::fflush(stdout);
    }
  }
}

void use_channels_last(model::StableDiffusion& sd) {
  model::use_channels_last(*sd.unet);
  model::use_channels_last(*sd.vae);
}

torch::Tensor test_image(const std::string& model_dir, int64_t size) {
  auto x = io::load_image(model_dir + "/test_images/00_google.png");
  if (x.size(2) == size && x.size(3) == size) return x;
  namespace F = torch::nn::functional;
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{size, size})
                               .mode(torch::kBilinear)
                               .align_corners(false))
      .clamp(-1, 1);
}

}  // namespace

int main(int argc, char** argv) try {
  const bool reuse = p2l::reuse_freed_memory();
  const Options o = parse(argc, argv);
  const int threads = set_threads(o.threads);
  if (o.blas_threads > 0) set_blas_threads(o.blas_threads);
  const torch::Device device(o.device);
  at::globalContext().setBenchmarkCuDNN(o.cudnn_benchmark);
  if (device.is_cuda() && !torch::cuda::is_available())
    throw Error("--device cuda: this LibTorch has no CUDA device");

  std::printf(
      "## bench_methods\n\nCPU: %s, %u logical CPUs; LibTorch %s; %d intra-op threads; "
      "BLAS threads %s; MKL %s, oneDNN %s; device %s%s; freed memory reused: %s; attention %s.\n",
      cpu_model().c_str(), std::thread::hardware_concurrency(), TORCH_VERSION, threads,
      o.blas_threads > 0 ? std::to_string(o.blas_threads).c_str() : "1 (p2l's default)",
      at::hasMKL() ? "yes" : "no", at::hasMKLDNN() ? "yes" : "no", device.str().c_str(),
      o.channels_last     ? "; channels-last weights"
      : o.cudnn_benchmark ? "; cuDNN benchmark mode"
                          : "", reuse ? "yes" : "no (P2L_SYSTEM_MALLOC)",
      model::attention_path());

  // The matrix-multiply peak at this run's threads: one product with BLAS's threads as p2l sets
  // them, and with as many BLAS threads as intra-op threads (what the machine can do).
  // Best of several: on a shared machine a single product may lose its core for a while.
  const int reps = device.is_cuda() ? 20 : 10;
  const double as_run = matmul_gflops(o.peak_size, device, reps);
  auto machine_peak = [&] {
    if (device.is_cuda()) return matmul_gflops(o.peak_size, device, reps);
    const int previous = set_blas_threads(threads);
    const double gflops = matmul_gflops(o.peak_size, device, reps);
    set_blas_threads(previous);
    return gflops;
  };
  const double gemm = std::max(as_run, machine_peak());
  const double conv = convolution_gflops(device, reps);
  const double peak = std::max(gemm, conv);
  std::printf(
      "\nMatrix-multiply peak (float32 %lld², best of %d): %.1f GFLOP/s with the BLAS "
      "threads of this run, %.1f GFLOP/s with %d BLAS threads; a 3×3 convolution "
      "256 → 256 at 64² (%s): %.1f GFLOP/s. \"%% of peak\" below is of the larger, "
      "%.1f GFLOP/s.\n",
      static_cast<long long>(o.peak_size), reps, as_run, gemm, threads,
      device.is_cuda() ? "cuDNN, TF32 allowed as LibTorch's default" : "oneDNN", conv, peak);
  std::fflush(stdout);

  for (const auto precision : o.precisions) {
    model::check_precision_supported(precision, device, "--precision");
    model::LoadOptions load;
    load.device = device;
    load.dtype = model::scalar_type(precision);
    if (o.vae_precision) {
      model::check_precision_supported(*o.vae_precision, device, "--vae-precision");
      load.vae_dtype = model::scalar_type(*o.vae_precision);
    }
    const std::string in =
        ", networks in " + model::precision_name(precision) + ", autoencoder in " +
        model::precision_name(model::precision_of(load.autoencoder_dtype()));
    if (o.bundled) {
      auto sd = model::load_stable_diffusion(o.model_dir, load);
      if (o.channels_last) use_channels_last(sd);
      const int64_t size = sd.config.unet.sample_size * sd.config.vae.downsampling_factor();
      Bench b{o.model_dir + " at " + std::to_string(size) + "², task " + o.task + in,
              &sd,
              eval::measure_task(test_image(o.model_dir, size), o.task, 0.05, 0),
              size,
              device,
              network_macs(sd.config, size),
              peak};
      if (!o.batches.empty())  // instead of the per-activity tables
        run_batches(b, o.methods, o.batches, o.steps, o.warmup);
      else
        run_bench(b, o.methods, o.steps, o.warmup, o.repeats, o.profile, o.micro,
                  o.check_flops);
    }

    for (const int64_t size : o.sd_sizes) {
      auto config = model::ModelConfig::sd_v1();
      config.unet.sample_size = size / config.vae.downsampling_factor();
      torch::manual_seed(0);
      auto sd = model::StableDiffusion::create(config);
      sd.tokenizer = std::make_shared<model::ClipTokenizer>(
          model::ClipTokenizer::from_directory(model::data_dir() + "/clip-tokenizer"));
      sd.to(device, load.dtype, load.autoencoder_dtype());
      if (o.channels_last) use_channels_last(sd);
      Bench b{"SD v1 configuration, random weights, at " + std::to_string(size) + "², task " +
                  o.task + in,
              &sd,
              eval::measure_task(test_image(o.model_dir, size), o.task, 0.05, 0),
              size,
              device,
              network_macs(config, size),
              peak};
      run_bench(b, o.sd_methods, o.sd_steps, o.sd_warmup, 1, o.profile, o.sd_micro,
                o.check_flops);
    }
  }
  std::printf(
      "\nMeasured again at the end (how much the machine's load moved during the run): "
      "matrix multiply %.1f GFLOP/s, convolution %.1f GFLOP/s.\n",
      machine_peak(), convolution_gflops(device, reps));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_methods: %s\n", e.what());
  return 1;
}
