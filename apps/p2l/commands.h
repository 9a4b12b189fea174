// Each subcommand of the p2l tool lives in its own file and registers itself on the app.
// Commands throw p2l::Error on bad input; main() prints it as one line and exits non-zero.
#pragma once

#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <string>

#include "p2l/model/checkpoint.h"

namespace p2l::cli {

void add_info_command(CLI::App& app);
void add_sample_command(CLI::App& app);
void add_degrade_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_restore_command(CLI::App& app);
void add_demo_command(CLI::App& app);
void add_sweep_command(CLI::App& app);
void add_score_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_autoencode_command(CLI::App& app);
void add_convert_command(CLI::App& app);

// A number ≥ 0. (CLI11's NonNegativeNumber says "not in range 0 to" DBL_MAX written out in
// full, 300 digits.)
inline CLI::Validator non_negative() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        try {
          size_t used = 0;
          const double v = std::stod(value, &used);
          if (used == value.size() && v >= 0) return "";
        } catch (const std::exception&) {
        }
        return "must be a number ≥ 0, not '" + value + "'";
      },
      "NUMBER ≥ 0");
}

// "cpu", "cuda", "cuda:1" → device; throws p2l::Error if unavailable.
torch::Device parse_device(const std::string& name);

// --device, --precision and --vae-precision, which every command that runs the networks takes.
struct ComputeFlags {
  std::string device = "cpu";
  std::string precision = "fp32";
  std::string vae_precision = "fp32";
};
void add_compute_flags(CLI::App* cmd, ComputeFlags& flags);
// The device and the networks' types, checked (an unknown value, fp16 on the CPU, a device
// without bf16: one line naming the flag) before any model is loaded.
model::LoadOptions load_options(const ComputeFlags& flags);
// The canonical names ("fp32", "bf16", "fp16") of --precision and --vae-precision, as plans and
// records hold them.
struct PrecisionNames {
  std::string networks, autoencoder;
};
PrecisionNames precision_names(const ComputeFlags& flags);

}  // namespace p2l::cli
