// `p2l info MODEL`: layout, storage dtype, each component's config and parameter count.
#include <nlohmann/json.hpp>

#include <iostream>

#include "commands.h"
#include "p2l/model/checkpoint.h"

namespace p2l::cli {

void add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Describe a model (diffusers folder or single file)");
  auto model_path = std::make_shared<std::string>();
  auto config = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("model", *model_path,
                  "Model folder or weight file (.safetensors, .ckpt, .pt, .pth, .bin)")
      ->required();
  cmd->add_option("--config", *config, "Original-layout YAML for a single file");
  cmd->add_flag("--json", *as_json, "Print JSON");
  cmd->callback([=] {
    model::LoadOptions options;
    options.config_yaml = *config;
    // Headers and configs only: a 2 GB file is described without reading its weights.
    const auto m = model::describe_model(*model_path, options);
    const auto& c = m.config;
    nlohmann::json info = {
        {"source", m.source},
        {"layout", model::layout_name(m.layout)},
        {"storage_dtype", m.storage_dtype},
        {"compute_dtype", "float32 (--precision, --vae-precision; bf16 or fp16 on request)"},
        {"latent_downsampling", c.vae.downsampling_factor()},
        {"tokenizer", m.tokenizer ? "yes" : "none"},
        {"text_encoder", {{"config", c.text.to_json()}, {"parameters", m.text_parameters}}},
        {"unet", {{"config", c.unet.to_json()}, {"parameters", m.unet_parameters}}},
        {"vae", {{"config", c.vae.to_json()}, {"parameters", m.vae_parameters}}},
        {"scheduler", c.schedule.to_json()}};
    if (*as_json) {
      std::cout << info.dump(2) << "\n";
      return;
    }
    std::cout << "model:          " << m.source << "\n"
              << "layout:         " << info["layout"].get<std::string>() << "\n"
              << "storage dtype:  " << m.storage_dtype << "\n"
              << "compute dtype:  " << info["compute_dtype"].get<std::string>() << "\n"
              << "tokenizer:      " << info["tokenizer"].get<std::string>() << "\n";
    for (const char* part : {"text_encoder", "unet", "vae"}) {
      std::cout << part << ": " << info[part]["parameters"].get<int64_t>() << " parameters\n"
                << "  " << info[part]["config"].dump() << "\n";
    }
    std::cout << "scheduler: " << info["scheduler"].dump() << "\n";
  });
}

}  // namespace p2l::cli
