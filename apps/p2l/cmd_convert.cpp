// `p2l convert IN OUT`: any model p2l reads, written as one .safetensors file or a diffusers
// folder (the library's model::convert_model does the work).
#include <iostream>

#include "commands.h"
#include "p2l/error.h"
#include "p2l/model/checkpoint.h"

namespace p2l::cli {

namespace {
struct ConvertArgs {
  std::string input, output, output_flag, config, tokenizer;
  bool half = false;
};
}  // namespace

void add_convert_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "convert",
      "Write a model (diffusers folder, .safetensors, or PyTorch .ckpt/.pt/.pth/.bin) as one "
      "original-layout .safetensors file, or as a diffusers folder with -o DIR/. Example: "
      "p2l convert sd-v1-4.ckpt sd-v1-4.safetensors --half");
  auto a = std::make_shared<ConvertArgs>();
  cmd->add_option("input", a->input, "Model folder or weight file")->required();
  cmd->add_option("output", a->output, "OUT.safetensors (single file) or DIR/ (diffusers)");
  cmd->add_option("-o,--output", a->output_flag, "Output: DIR/ (diffusers) or OUT.safetensors");
  cmd->add_flag("--half", a->half, "Store float16 (default: the input's storage type)");
  cmd->add_option("--config", a->config, "Original-layout YAML for a single file");
  cmd->add_option("--tokenizer", a->tokenizer, "Folder with vocab.json and merges.txt");
  cmd->callback([=] {
    if (a->output.empty() == a->output_flag.empty())
      throw Error("convert: give one output, OUT.safetensors or -o DIR/");
    model::ConvertOptions options;
    options.load.config_yaml = a->config;
    options.load.tokenizer_dir = a->tokenizer;
    options.half = a->half;
    const std::string& output = a->output.empty() ? a->output_flag : a->output;
    const auto summary = model::convert_model(a->input, output, options);
    std::cout << "wrote " << output << " (" << model::layout_name(summary.layout) << ", "
              << summary.storage_dtype << ")\n";
  });
}

}  // namespace p2l::cli
