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
  cmd->add_option("model", *model_path, "Model folder or .safetensors file")->required();
  cmd->add_option("--config", *config, "Original-layout YAML for a single file");
  cmd->add_flag("--json", *as_json, "Print JSON");
  cmd->callback([=] {
    model::LoadOptions options;
    options.config_yaml = *config;
    auto sd = model::load_stable_diffusion(*model_path, options);
    const auto& c = sd.config;
    nlohmann::json info = {
        {"source", sd.source},
        {"layout", model::layout_name(sd.layout)},
        {"storage_dtype", sd.storage_dtype},
        {"compute_dtype", std::string(c10::toString(sd.dtype()))},
        {"latent_downsampling", c.vae.downsampling_factor()},
        {"tokenizer", sd.tokenizer ? "yes" : "none"},
        {"text_encoder",
         {{"config", c.text.to_json()}, {"parameters", model::parameter_count(*sd.text_encoder)}}},
        {"unet", {{"config", c.unet.to_json()}, {"parameters", model::parameter_count(*sd.unet)}}},
        {"vae", {{"config", c.vae.to_json()}, {"parameters", model::parameter_count(*sd.vae)}}},
        {"scheduler", c.schedule.to_json()}};
    if (*as_json) {
      std::cout << info.dump(2) << "\n";
      return;
    }
    std::cout << "model:          " << sd.source << "\n"
              << "layout:         " << info["layout"].get<std::string>() << "\n"
              << "storage dtype:  " << sd.storage_dtype << "\n"
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
