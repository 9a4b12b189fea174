// p2l: posterior sampling with latent diffusion priors. This file only wires the subcommands
// and the options every command shares; the work is done by the library.
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "commands.h"
#include "p2l/allocator.h"
#include "p2l/build_info.h"
#include "p2l/error.h"
#include "p2l/log.h"
#include "p2l/model/precision.h"
#include "p2l/threads.h"

namespace p2l::cli {

torch::Device parse_device(const std::string& name) {
  try {
    torch::Device device(name);
    if (device.is_cuda() && !torch::cuda::is_available())
      throw Error("--device " + name + ": CUDA is not available in this build or machine");
    // Checked here: LibTorch's own message ("invalid device ordinal") names no flag.
    const auto count = device.is_cuda() ? torch::cuda::device_count() : 0;
    if (device.is_cuda() && device.has_index() && static_cast<size_t>(device.index()) >= count)
      throw Error("--device " + name + ": this machine has " + std::to_string(count) +
                  " CUDA device(s), cuda:0 to cuda:" + std::to_string(count - 1));
    return device;
  } catch (const c10::Error&) {
    throw Error("--device: unknown device '" + name + "' (use cpu, cuda or cuda:N)");
  }
}

void add_compute_flags(CLI::App* cmd, ComputeFlags& flags) {
  cmd->add_option("--device", flags.device, "cpu, cuda or cuda:N");
  cmd->add_option("--precision", flags.precision,
                  "What the text encoder and UNet compute in: fp32, bf16 (CPU or GPU) or fp16 "
                  "(GPU); the sampler's and solver's own arithmetic stays float32 (default fp32)");
  cmd->add_option("--vae-precision", flags.vae_precision,
                  "What the autoencoder computes in (default fp32: in bf16 it costs restorations "
                  "0.16 dB on the bundled model, the other networks in bf16 nothing measurable)");
}

model::LoadOptions load_options(const ComputeFlags& flags) {
  model::LoadOptions load;
  load.device = parse_device(flags.device);
  model::set_precisions(load, flags.precision, flags.vae_precision);
  return load;
}

PrecisionNames precision_names(const ComputeFlags& flags) {
  return {model::precision_name(model::parse_precision(flags.precision)),
          model::precision_name(model::parse_precision(flags.vae_precision, "--vae-precision"))};
}

// Every number flag of every command: CLI11 reads "nan" and "inf" as numbers and wraps "-1" into
// 2^64 - 1 for an unsigned one; p2l refuses both with one line naming the flag.
void check_number_flags(CLI::App* app) {
  for (auto* option : app->get_options()) {
    const std::string type = option->get_type_name();
    if (type.find("FLOAT") != std::string::npos)
      option->check(CLI::Validator(
          [](std::string& value) -> std::string {
            char* end = nullptr;
            const double v = std::strtod(value.c_str(), &end);
            return end != value.c_str() && !std::isfinite(v) ? "not a finite number: " + value
                                                              : std::string();
          },
          ""));
    if (type.find("UINT") != std::string::npos)
      option->check(CLI::Validator(
          [](std::string& value) -> std::string {
            const auto first = value.find_first_not_of(" \t");
            return first != std::string::npos && value[first] == '-'
                       ? "must not be negative: " + value
                       : std::string();
          },
          ""));
  }
  for (auto* sub : app->get_subcommands({})) check_number_flags(sub);
}

}  // namespace p2l::cli

int main(int argc, char** argv) {
  p2l::reuse_freed_memory();  // before the first large tensor
  CLI::App app{"p2l: image restoration by posterior sampling with latent diffusion priors"};
  app.require_subcommand(1);
  app.fallthrough();  // shared options (--threads, -v) may follow the subcommand
  app.set_version_flag("--version", [] { return p2l::build_info(); },
                       "LibTorch, CUDA, the attention path and the precisions this build has");
  int threads = 0;
  bool verbose = false, quiet = false;
  // More threads than cores only slow the work down; 100 000 of them hung the process.
  const int max_threads = 4 * std::max(1u, std::thread::hardware_concurrency());
  app.add_option("--threads", threads, "CPU threads for LibTorch (default: OMP_NUM_THREADS, else all cores)")
      ->check(CLI::Range(0, max_threads).description(""));
  app.add_flag("-v,--verbose", verbose, "Debug messages (e.g. ignored checkpoint tensors)");
  app.add_flag("-q,--quiet", quiet, "Only errors");
  app.parse_complete_callback([&] {
    // LibTorch starts with one intra-op thread here: OMP_NUM_THREADS or every core, unless told.
    p2l::set_threads(threads);
    if (verbose) p2l::log::set_level(p2l::log::Level::Debug);
    if (quiet) p2l::log::set_level(p2l::log::Level::Error);
  });

  p2l::cli::add_info_command(app);
  p2l::cli::add_sample_command(app);
  p2l::cli::add_degrade_command(app);
  p2l::cli::add_restore_command(app);
  p2l::cli::add_demo_command(app);
  p2l::cli::add_sweep_command(app);
  p2l::cli::add_score_command(app);
  p2l::cli::add_eval_command(app);
  p2l::cli::add_autoencode_command(app);
  p2l::cli::add_convert_command(app);
  p2l::cli::add_train_command(app);
  p2l::cli::check_number_flags(&app);

  // CLI11 would only say "a subcommand is required"; name the unknown one instead.
  if (argc > 1 && argv[1][0] != '-') {
    std::string names;
    bool known = false;
    for (const auto* sub : app.get_subcommands({})) {
      names += (names.empty() ? "" : ", ") + sub->get_name();
      known = known || sub->check_name(argv[1]);
    }
    if (!known) {
      std::cerr << "p2l: error: unknown command '" << argv[1] << "' (commands: " << names << ")\n";
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    // One line, as for every other error.
    const std::string help =
        argc > 1 && argv[1][0] != '-' ? "p2l " + std::string(argv[1]) + " --help" : "p2l --help";
    std::cerr << "p2l: error: " << e.what() << " (see " << help << ")\n";
    return e.get_exit_code();
  } catch (const p2l::Error& e) {
    std::cerr << "p2l: error: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {
    // LibTorch messages carry a C++ backtrace; its first line says what went wrong.
    const std::string msg = e.what_without_backtrace();
    std::cerr << "p2l: error: " << msg.substr(0, msg.find('\n')) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "p2l: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
