#include "p2l/model/config_inference.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <type_traits>

#include "p2l/error.h"
#include "p2l/io/json_file.h"
#include "p2l/log.h"

namespace p2l::model {

namespace fs = std::filesystem;

namespace {

std::string shape_text(at::IntArrayRef shape) { return c10::str(shape); }

const std::vector<int64_t>& need_shape(const Shapes& shapes, const std::string& key) {
  if (auto* s = find_shape(shapes, key)) return *s;
  throw Error("missing tensor '" + key + "' needed to infer the model's configuration");
}

// Sizes from the tensors, SD v1's head counts; validated by the callers.
ModelConfig infer_from_shapes(const Shapes& shapes) {
  ModelConfig c;
  // UNet: channels, levels and attention placement from the tensors; SD v1's 8 heads.
  const std::string u = single_file_prefix(Component::UNet);
  {
    auto& unet = c.unet;
    const auto& conv_in = need_shape(shapes, u + "input_blocks.0.0.weight");
    unet.in_channels = conv_in.at(1);
    unet.out_channels = need_shape(shapes, u + "out.2.weight").at(0);
    int downsamplers = 0;
    for (const auto& [key, shape] : shapes)
      if (starts_with(key, u + "input_blocks.") && key.size() > 10 &&
          key.compare(key.size() - 10, 10, ".op.weight") == 0)
        ++downsamplers;
    const int levels = downsamplers + 1;
    const int blocks = count_indexed(shapes, u + "input_blocks.");
    if (blocks < 2 || (blocks - levels) % levels != 0)
      throw Error("cannot infer the UNet's layout from the tensors (" + std::to_string(blocks) +
                  " input blocks, " + std::to_string(levels) + " levels)");
    unet.layers_per_block = (blocks - levels) / levels;
    unet.block_out_channels.clear();
    unet.attention_levels.clear();
    for (int level = 0; level < levels; ++level) {
      const std::string block =
          u + "input_blocks." + std::to_string(1 + level * (unet.layers_per_block + 1)) + ".";
      unet.block_out_channels.push_back(need_shape(shapes, block + "0.out_layers.3.weight").at(0));
      const auto* proj_in = find_shape(shapes, block + "1.proj_in.weight");
      unet.attention_levels.push_back(proj_in != nullptr);
      if (proj_in) unet.use_linear_projection = proj_in->size() == 2;
    }
    const std::string mid = u + "middle_block.1.";
    unet.context_dim = need_shape(shapes, mid + "transformer_blocks.0.attn2.to_k.weight").at(1);
    unet.transformer_depth = count_indexed(shapes, mid + "transformer_blocks.");
    unet.num_heads = UNetConfig::sd_v1().num_heads;
  }
  // VAE.
  const std::string v = single_file_prefix(Component::Vae);
  {
    auto& vae = c.vae;
    const int levels = count_indexed(shapes, v + "encoder.down.");
    if (levels == 0) throw Error("missing tensor '" + v + "encoder.down.0.block.0.conv1.weight'");
    vae.block_out_channels.clear();
    for (int level = 0; level < levels; ++level)
      vae.block_out_channels.push_back(
          need_shape(shapes, v + "encoder.down." + std::to_string(level) + ".block.0.conv1.weight")
              .at(0));
    vae.layers_per_block = count_indexed(shapes, v + "encoder.down.0.block.");
    vae.in_channels = need_shape(shapes, v + "encoder.conv_in.weight").at(1);
    vae.out_channels = need_shape(shapes, v + "decoder.conv_out.weight").at(0);
    vae.latent_channels = need_shape(shapes, v + "post_quant_conv.weight").at(0);
  }
  // Text encoder: sizes from the tensors; CLIP ViT-L/14's 12 heads.
  const std::string t = text_prefix(shapes);
  {
    auto& text = c.text;
    const auto& tok = need_shape(shapes, t + "embeddings.token_embedding.weight");
    text.vocab_size = tok.at(0);
    text.hidden_size = tok.at(1);
    text.max_positions = need_shape(shapes, t + "embeddings.position_embedding.weight").at(0);
    text.num_layers = count_indexed(shapes, t + "encoder.layers.");
    text.intermediate_size = need_shape(shapes, t + "encoder.layers.0.mlp.fc1.weight").at(0);
    text.num_heads = ClipTextConfig::sd_v1().num_heads;
  }
  return c;
}

}  // namespace

const std::vector<int64_t>* find_shape(const Shapes& shapes, const std::string& key) {
  auto it = shapes.find(key);
  return it == shapes.end() ? nullptr : &it->second;
}

int count_indexed(const Shapes& shapes, const std::string& prefix) {
  int count = 0;
  for (auto it = shapes.lower_bound(prefix); it != shapes.end() && starts_with(it->first, prefix);
       ++it) {
    const auto rest = it->first.substr(prefix.size());
    const auto dot = rest.find('.');
    try {
      count = std::max(count, std::stoi(rest.substr(0, dot)) + 1);
    } catch (const std::exception&) {
    }
  }
  return count;
}

std::string text_prefix(const Shapes& shapes) {
  const std::string modern = single_file_prefix(Component::TextEncoder);
  if (find_shape(shapes, modern + "embeddings.token_embedding.weight")) return modern;
  // Checkpoints saved with older transformers lack the text_model level.
  const std::string legacy = "cond_stage_model.transformer.";
  if (find_shape(shapes, legacy + "embeddings.token_embedding.weight")) return legacy;
  return modern;
}

ModelConfig config_from_shapes(const Shapes& shapes) {
  ModelConfig c = infer_from_shapes(shapes);
  if (c.text.hidden_size % c.text.num_heads != 0)
    throw Error("the text encoder's width " + std::to_string(c.text.hidden_size) +
                " does not fit CLIP ViT-L/14's 12 heads: give its YAML with --config");
  c.unet.validate();
  c.vae.validate();
  c.text.validate();
  return c;
}

ModelConfig config_from_original_yaml(const std::string& yaml_path, const Shapes& shapes) {
  ModelConfig c = infer_from_shapes(shapes);
  YAML::Node root;
  try {
    root = YAML::LoadFile(yaml_path);
  } catch (const YAML::Exception& e) {
    throw Error(yaml_path + ": cannot read YAML (" + e.what() + ")");
  }
  const auto fail = [&](const std::string& m) { throw Error(yaml_path + ": " + m); };
  // Channel counts are base × multiplier. Both factors are bounded before they are multiplied, so
  // that the product cannot overflow (validate() bounds the result, but only once it exists).
  const auto channels = [&](int64_t base, int64_t mult, const std::string& what) {
    constexpr int64_t kMaxFactor = 65536;
    if (base <= 0 || mult <= 0 || base > kMaxFactor || mult > kMaxFactor)
      fail(what + ": " + std::to_string(base) + " × " + std::to_string(mult) +
           " is not a channel count (each factor from 1 to 65536)");
    return base * mult;
  };
  try {
    const auto params = root["model"]["params"];
    if (!params) fail("no model.params block");
    if (params["scale_factor"]) c.vae.scaling_factor = params["scale_factor"].as<double>();
    if (params["linear_start"]) c.schedule.beta_start = params["linear_start"].as<double>();
    if (params["linear_end"]) c.schedule.beta_end = params["linear_end"].as<double>();
    if (params["timesteps"]) c.schedule.num_train_timesteps = params["timesteps"].as<int64_t>();

    if (const auto u = params["unet_config"]["params"]) {
      auto& unet = c.unet;
      const int64_t mc = u["model_channels"].as<int64_t>();
      const auto mult = u["channel_mult"].as<std::vector<int64_t>>();
      const auto attn = u["attention_resolutions"].as<std::vector<int64_t>>();
      // UNetConfig's own bound, checked here because level is a shift count below.
      if (mult.size() > 8)
        fail("channel_mult has " + std::to_string(mult.size()) + " levels, p2l's bound is 8");
      unet.block_out_channels.clear();
      unet.attention_levels.clear();
      for (size_t level = 0; level < mult.size(); ++level) {
        unet.block_out_channels.push_back(
            channels(mc, mult[level], "model_channels × channel_mult"));
        const int64_t ds = int64_t{1} << level;
        unet.attention_levels.push_back(std::find(attn.begin(), attn.end(), ds) != attn.end());
      }
      unet.in_channels = u["in_channels"].as<int64_t>(unet.in_channels);
      unet.out_channels = u["out_channels"].as<int64_t>(unet.out_channels);
      unet.layers_per_block = u["num_res_blocks"].as<int64_t>();
      const int64_t heads = u["num_heads"].as<int64_t>(-1);
      const int64_t head_channels = u["num_head_channels"].as<int64_t>(-1);
      if (head_channels > 0) {
        unet.head_channels = head_channels;
      } else if (heads > 0) {
        unet.num_heads = heads;
      }
      unet.context_dim = u["context_dim"].as<int64_t>(unet.context_dim);
      unet.transformer_depth = u["transformer_depth"].as<int64_t>(1);
      unet.use_linear_projection = u["use_linear_in_transformer"].as<bool>(false);
      unet.sample_size = u["image_size"].as<int64_t>(unet.sample_size);
      unet.validate();
    }
    if (const auto f = params["first_stage_config"]["params"]) {
      auto& vae = c.vae;
      const auto dd = f["ddconfig"];
      const int64_t ch = dd["ch"].as<int64_t>();
      vae.block_out_channels.clear();
      for (auto m : dd["ch_mult"].as<std::vector<int64_t>>())
        vae.block_out_channels.push_back(channels(ch, m, "ch × ch_mult"));
      vae.layers_per_block = dd["num_res_blocks"].as<int64_t>();
      vae.in_channels = dd["in_channels"].as<int64_t>(3);
      vae.out_channels = dd["out_ch"].as<int64_t>(3);
      vae.latent_channels = dd["z_channels"].as<int64_t>();
      if (f["embed_dim"] && f["embed_dim"].as<int64_t>() != vae.latent_channels)
        fail("embed_dim different from z_channels is not supported");
      vae.validate();
    }
    // SD's own schema never describes the text encoder (always CLIP ViT-L/14); p2l's and the
    // goldens' small models add cond_stage_config.params.text_config.
    if (const auto tc = params["cond_stage_config"]["params"]["text_config"]) {
      auto& text = c.text;
      text.vocab_size = tc["vocab_size"].as<int64_t>(text.vocab_size);
      text.hidden_size = tc["hidden_size"].as<int64_t>(text.hidden_size);
      text.intermediate_size = tc["intermediate_size"].as<int64_t>(text.intermediate_size);
      text.num_layers = tc["num_hidden_layers"].as<int64_t>(text.num_layers);
      text.num_heads = tc["num_attention_heads"].as<int64_t>(text.num_heads);
      text.max_positions = tc["max_position_embeddings"].as<int64_t>(text.max_positions);
      text.hidden_act = tc["hidden_act"].as<std::string>(text.hidden_act);
      text.layer_norm_eps = tc["layer_norm_eps"].as<double>(text.layer_norm_eps);
      text.validate();
    } else {
      c.text.num_heads = ClipTextConfig::sd_v1().num_heads;
    }
  } catch (const YAML::Exception& e) {
    fail(std::string("bad value (") + e.what() + ")");
  }
  c.unet.validate();
  c.vae.validate();
  c.text.validate();
  // The YAML's sizes against the weights', before any module is built: a YAML that lies (a
  // thousand channels per level, sixteen layers) would otherwise allocate what the file never held.
  const ModelConfig stored = infer_from_shapes(shapes);
  const auto same = [&](const std::string& what, const auto& claimed, const auto& held) {
    const auto text = [](const auto& v) {
      if constexpr (std::is_integral_v<std::decay_t<decltype(v)>>) return std::to_string(v);
      else return shape_text(v);
    };
    if (claimed != held) fail(what + " is " + text(claimed) + ", the weights hold " + text(held));
  };
  same("the UNet's model_channels × channel_mult", c.unet.block_out_channels,
       stored.unet.block_out_channels);
  same("the UNet's num_res_blocks", c.unet.layers_per_block, stored.unet.layers_per_block);
  same("the UNet's in_channels", c.unet.in_channels, stored.unet.in_channels);
  same("the autoencoder's ch × ch_mult", c.vae.block_out_channels, stored.vae.block_out_channels);
  same("the autoencoder's num_res_blocks", c.vae.layers_per_block, stored.vae.layers_per_block);
  same("the autoencoder's z_channels", c.vae.latent_channels, stored.vae.latent_channels);
  same("the text encoder's num_hidden_layers", c.text.num_layers, stored.text.num_layers);
  same("the text encoder's hidden_size", c.text.hidden_size, stored.text.hidden_size);
  same("the text encoder's intermediate_size", c.text.intermediate_size,
       stored.text.intermediate_size);
  same("the text encoder's vocab_size", c.text.vocab_size, stored.text.vocab_size);
  return c;
}

ModelConfig diffusers_config(const fs::path& dir) {
  for (const char* sub : {"unet", "vae", "text_encoder"})
    if (!fs::is_directory(dir / sub))
      throw Error(dir.string() + ": not a model (no " + sub + "/ folder)");
  ModelConfig config;
  // Each config's errors name its file.
  const auto read = [&](const char* component, const auto& from_json) {
    const auto path = (dir / component / "config.json").string();
    const auto j = io::read_json(path);
    try {
      return from_json(j);
    } catch (const Error& e) {
      throw Error(path + ": " + e.what());
    } catch (const nlohmann::json::exception& e) {
      throw Error(path + ": " + e.what());
    }
  };
  config.unet = read("unet", UNetConfig::from_json);
  config.vae = read("vae", VaeConfig::from_json);
  config.text = read("text_encoder", ClipTextConfig::from_json);
  const auto scheduler = dir / "scheduler" / "scheduler_config.json";
  if (fs::exists(scheduler)) {
    try {
      config.schedule = diffusion::ScheduleConfig::from_json(io::read_json(scheduler.string()));
    } catch (const Error& e) {
      throw Error(scheduler.string() + ": " + e.what());
    }
  }
  return config;
}

ModelConfig single_file_config(const fs::path& path, const Shapes& shapes,
                               const LoadOptions& options) {
  std::string yaml = options.config_yaml;
  if (yaml.empty()) {
    auto beside = path;
    beside.replace_extension(".yaml");
    if (fs::exists(beside)) yaml = beside.string();
  } else if (!fs::exists(yaml)) {
    throw Error(yaml + ": no such config file");
  }
  if (yaml.empty())
    log::info(path.string() + ": no YAML config; using SD v1 head counts and tensor shapes");
  if (yaml.empty()) return config_from_shapes(shapes);
  try {
    return config_from_original_yaml(yaml, shapes);
  } catch (const Error& e) {
    const std::string message = e.what();
    if (message.rfind(yaml, 0) == 0) throw;
    throw Error(yaml + ": " + message);  // a config's own check ("unet config: …")
  }
}

void check_config_against_weights(const ModelConfig& config, const fs::path& dir,
                                  const std::map<Component, Shapes>& shapes) {
  const auto config_file = [&](Component component) {
    return (dir / component_name(component) / "config.json").string();
  };
  const auto check = [&](Component component, const std::string& what, int64_t claimed,
                         int64_t stored) {
    if (claimed != stored)
      throw Error(config_file(component) + ": " + what + " is " + std::to_string(claimed) +
                  ", the weights hold " + std::to_string(stored));
  };
  // A width read from one stored tensor's shape. A tensor that is absent or of another rank is
  // left to the loader, which names it with the shape it expects.
  const auto dim = [&](Component component, const std::string& name, size_t axis, size_t rank) {
    return [&, component, name, axis, rank](const std::string& what, int64_t claimed) {
      const auto* shape = find_shape(shapes.at(component), name);
      if (shape == nullptr || shape->size() != rank || (*shape)[axis] == claimed) return;
      throw Error(config_file(component) + " expects " + what + " " + std::to_string(claimed) +
                  " in '" + name + "', which has shape " + c10::str(*shape));
    };
  };
  const auto& text = config.text;
  const auto T = Component::TextEncoder;
  check(T, "num_hidden_layers", text.num_layers,
        count_indexed(shapes.at(T), "text_model.encoder.layers."));
  dim(T, "text_model.embeddings.token_embedding.weight", 1, 2)("hidden_size", text.hidden_size);
  dim(T, "text_model.embeddings.token_embedding.weight", 0, 2)("vocab_size", text.vocab_size);
  dim(T, "text_model.embeddings.position_embedding.weight", 0, 2)("max_position_embeddings",
                                                                   text.max_positions);
  dim(T, "text_model.encoder.layers.0.mlp.fc1.weight", 0, 2)("intermediate_size",
                                                             text.intermediate_size);
  // UNet and autoencoder: levels, layers per level and each level's width.
  const auto levels = [&](Component component, const std::string& blocks,
                          const std::vector<int64_t>& channels, int64_t layers) {
    check(component, "the number of block_out_channels", static_cast<int64_t>(channels.size()),
          count_indexed(shapes.at(component), blocks));
    check(component, "layers_per_block", layers,
          count_indexed(shapes.at(component), blocks + "0.resnets."));
    for (size_t level = 0; level < channels.size(); ++level)
      dim(component, blocks + std::to_string(level) + ".resnets.0.conv1.weight", 0, 4)(
          "block_out_channels[" + std::to_string(level) + "]", channels[level]);
  };
  levels(Component::UNet, "down_blocks.", config.unet.block_out_channels,
         config.unet.layers_per_block);
  dim(Component::UNet, "conv_in.weight", 1, 4)("in_channels", config.unet.in_channels);
  levels(Component::Vae, "encoder.down_blocks.", config.vae.block_out_channels,
         config.vae.layers_per_block);
  dim(Component::Vae, "decoder.conv_in.weight", 1, 4)("latent_channels",
                                                      config.vae.latent_channels);
}

}  // namespace p2l::model
