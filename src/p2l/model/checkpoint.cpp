#include "p2l/model/checkpoint.h"

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "p2l/error.h"
#include "p2l/io/json_file.h"
#include "p2l/io/safetensors.h"
#include "p2l/io/weight_file.h"
#include "p2l/log.h"

namespace p2l::model {

namespace fs = std::filesystem;
using Shapes = std::map<std::string, std::vector<int64_t>>;

namespace {

std::vector<std::string> split(const std::string& name) {
  std::vector<std::string> parts;
  std::stringstream ss(name);
  std::string part;
  while (std::getline(ss, part, '.')) parts.push_back(part);
  return parts;
}

// parts[k..] joined with '.'.
std::string tail(const std::vector<std::string>& parts, size_t k) {
  std::string out;
  for (size_t i = k; i < parts.size(); ++i) out += (out.empty() ? "" : ".") + parts[i];
  return out;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

std::string replace_prefix(const std::string& s,
                           const std::vector<std::pair<std::string, std::string>>& rules) {
  for (const auto& [from, to] : rules)
    if (starts_with(s, from)) return to + s.substr(from.size());
  return s;
}

int to_int(const std::string& s, const std::string& name) {
  try {
    size_t used = 0;
    const int v = std::stoi(s, &used);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  throw Error("unexpected parameter name '" + name + "'");
}

std::string shape_str(at::IntArrayRef shape) { return c10::str(shape); }

// --- original → diffusers names ---------------------------------------------------------------

std::string unet_resnet(const std::string& rest) {
  return replace_prefix(rest, {{"in_layers.0.", "norm1."},
                               {"in_layers.2.", "conv1."},
                               {"emb_layers.1.", "time_emb_proj."},
                               {"out_layers.0.", "norm2."},
                               {"out_layers.3.", "conv2."},
                               {"skip_connection.", "conv_shortcut."}});
}

std::string unet_to_diffusers(const std::string& n, const UNetConfig& c) {
  const auto p = split(n);
  const int per_level = static_cast<int>(c.layers_per_block) + 1;
  if (p.size() >= 3 && p[0] == "time_embed")
    return (p[1] == "0" ? "time_embedding.linear_1." : "time_embedding.linear_2.") + tail(p, 2);
  if (p.size() >= 3 && p[0] == "out")
    return (p[1] == "0" ? "conv_norm_out." : "conv_out.") + tail(p, 2);
  if (p.size() >= 4 && p[0] == "input_blocks") {
    const int b = to_int(p[1], n);
    if (b == 0) return "conv_in." + tail(p, 3);
    const int i = (b - 1) / per_level, j = (b - 1) % per_level;
    const std::string level = "down_blocks." + std::to_string(i) + ".";
    if (j == per_level - 1) return level + "downsamplers.0.conv." + tail(p, 4);
    if (p[2] == "0") return level + "resnets." + std::to_string(j) + "." + unet_resnet(tail(p, 3));
    return level + "attentions." + std::to_string(j) + "." + tail(p, 3);
  }
  if (p.size() >= 3 && p[0] == "middle_block") {
    if (p[1] == "1") return "mid_block.attentions.0." + tail(p, 2);
    return std::string("mid_block.resnets.") + (p[1] == "0" ? "0." : "1.") + unet_resnet(tail(p, 2));
  }
  if (p.size() >= 4 && p[0] == "output_blocks") {
    const int b = to_int(p[1], n);
    const std::string level = "up_blocks." + std::to_string(b / per_level) + ".";
    const std::string j = std::to_string(b % per_level);
    if (p[2] == "0") return level + "resnets." + j + "." + unet_resnet(tail(p, 3));
    if (p[3] == "conv") return level + "upsamplers.0.conv." + tail(p, 4);
    return level + "attentions." + j + "." + tail(p, 3);
  }
  throw Error("no diffusers name for UNet parameter '" + n + "'");
}

std::string vae_resnet(const std::string& rest) {
  return replace_prefix(rest, {{"nin_shortcut.", "conv_shortcut."}});
}

std::string vae_to_diffusers(const std::string& n, const VaeConfig& c) {
  const auto p = split(n);
  if (p.size() >= 3 && (p[0] == "encoder" || p[0] == "decoder")) {
    const std::string side = p[0] + ".";
    if (p[1] == "down" || p[1] == "up") {
      int level = to_int(p[2], n);
      if (p[1] == "up") level = static_cast<int>(c.block_out_channels.size()) - 1 - level;
      const std::string blocks = side + (p[1] == "down" ? "down_blocks." : "up_blocks.") +
                                 std::to_string(level) + ".";
      if (p[3] == "block") return blocks + "resnets." + p[4] + "." + vae_resnet(tail(p, 5));
      return blocks + (p[1] == "down" ? "downsamplers.0." : "upsamplers.0.") + tail(p, 4);
    }
    if (p[1] == "mid") {
      if (p[2] == "block_1") return side + "mid_block.resnets.0." + vae_resnet(tail(p, 3));
      if (p[2] == "block_2") return side + "mid_block.resnets.1." + vae_resnet(tail(p, 3));
      static const std::map<std::string, std::string> kAttn = {
          {"norm", "group_norm"}, {"q", "to_q"}, {"k", "to_k"}, {"v", "to_v"},
          {"proj_out", "to_out.0"}};
      return side + "mid_block.attentions.0." + kAttn.at(p[3]) + "." + tail(p, 4);
    }
    if (p[1] == "norm_out") return side + "conv_norm_out." + tail(p, 2);
  }
  return n;
}

// Older diffusers files name the VAE attention query/key/value/proj_attn.
std::string normalise_diffusers_name(Component component, const std::string& name) {
  if (component != Component::Vae) return name;
  static const std::vector<std::pair<std::string, std::string>> kLegacy = {
      {".attentions.0.query.", ".attentions.0.to_q."},
      {".attentions.0.key.", ".attentions.0.to_k."},
      {".attentions.0.value.", ".attentions.0.to_v."},
      {".attentions.0.proj_attn.", ".attentions.0.to_out.0."}};
  for (const auto& [from, to] : kLegacy) {
    const auto pos = name.find(from);
    if (pos != std::string::npos) return name.substr(0, pos) + to + name.substr(pos + from.size());
  }
  return name;
}

// The VAE's mid-block attention: 1×1 convs in p2l and the original layout, [C, C] linear
// weights in diffusers; some conversions also store the biases as [C, 1, 1].
bool is_vae_attention(const std::string& original) {
  static const std::regex kPattern(R"((en|de)coder\.mid\.attn_1\.(q|k|v|proj_out)\.(weight|bias))");
  return std::regex_match(original, kPattern);
}

torch::Tensor fit_stored_shape(const std::string& original, const torch::Tensor& stored,
                               at::IntArrayRef expected) {
  if (stored.sizes() == expected) return stored;
  if (is_vae_attention(original) && stored.numel() == c10::multiply_integers(expected)) {
    // Only trailing singleton dimensions may differ.
    auto squeeze = [](at::IntArrayRef s) {
      std::vector<int64_t> v = s.vec();
      while (v.size() > 1 && v.back() == 1) v.pop_back();
      return v;
    };
    if (squeeze(stored.sizes()) == squeeze(expected)) return stored.reshape(expected);
  }
  return {};
}

// --- configs ----------------------------------------------------------------------------------

const std::vector<int64_t>* find_shape(const Shapes& shapes, const std::string& key) {
  auto it = shapes.find(key);
  return it == shapes.end() ? nullptr : &it->second;
}

const std::vector<int64_t>& need_shape(const Shapes& shapes, const std::string& key) {
  if (auto* s = find_shape(shapes, key)) return *s;
  throw Error("missing tensor '" + key + "' needed to infer the model's configuration");
}

// Largest integer N with "<prefix>N." present in any key, plus one.
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

std::string dtype_summary(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : "+") + n;
  return out;
}

std::shared_ptr<const ClipTokenizer> find_tokenizer(const std::string& model_tokenizer_dir,
                                                    int64_t vocab_size, const LoadOptions& options) {
  std::vector<std::string> candidates;
  if (!options.tokenizer_dir.empty()) {
    candidates.push_back(options.tokenizer_dir);
  } else {
    if (!model_tokenizer_dir.empty()) candidates.push_back(model_tokenizer_dir);
    candidates.push_back((fs::path(data_dir()) / "clip-tokenizer").string());
  }
  for (const auto& dir : candidates) {
    if (fs::exists(fs::path(dir) / "vocab.json") || !options.tokenizer_dir.empty()) {
      auto tokenizer = std::make_shared<const ClipTokenizer>(ClipTokenizer::from_directory(dir));
      // A token id beyond the text encoder's embedding table would end in LibTorch's "index out
      // of range in self" at the first prompt: a model without its own tokenizer/ whose
      // vocabulary is smaller than CLIP's.
      if (static_cast<int64_t>(tokenizer->vocab_size()) > vocab_size)
        throw Error(dir + ": the tokenizer has " + std::to_string(tokenizer->vocab_size()) +
                    " tokens, the text encoder " + std::to_string(vocab_size) +
                    (options.tokenizer_dir.empty() && dir != model_tokenizer_dir
                         ? " (the model has no tokenizer/ folder; give --tokenizer DIR)"
                         : ""));
      return tokenizer;
    }
  }
  log::warn("no tokenizer found: prompts cannot be encoded (pass --tokenizer DIR)");
  return nullptr;
}

void report_unused(const std::set<std::string>& available, const std::set<std::string>& used,
                   const std::string& source) {
  size_t unused = 0;
  for (const auto& key : available) {
    if (used.count(key)) continue;
    ++unused;
    log::debug(source + ": ignoring extra tensor '" + key + "'");
  }
  if (unused) log::debug(source + ": " + std::to_string(unused) + " extra tensors ignored");
}

// Finds the weight file of a diffusers component folder: safetensors first, as diffusers does,
// then the PyTorch checkpoint older folders hold (transformers calls model.safetensors'
// counterpart pytorch_model.bin).
std::string component_weights(const fs::path& folder, const std::string& stem) {
  const std::string bin = stem == "model" ? "pytorch_model" : stem;
  for (const auto& name :
       {stem + ".safetensors", stem + ".fp16.safetensors", bin + ".bin", bin + ".fp16.bin"}) {
    if (fs::exists(folder / name)) return (folder / name).string();
  }
  throw Error(folder.string() + ": no " + stem + ".safetensors or " + bin + ".bin");
}

}  // namespace

std::string component_name(Component component) {
  switch (component) {
    case Component::TextEncoder: return "text_encoder";
    case Component::UNet: return "unet";
    case Component::Vae: return "vae";
  }
  return "?";
}

std::string single_file_prefix(Component component) {
  switch (component) {
    case Component::TextEncoder: return "cond_stage_model.transformer.text_model.";
    case Component::UNet: return "model.diffusion_model.";
    case Component::Vae: return "first_stage_model.";
  }
  return "";
}

std::string diffusers_name(Component component, const std::string& original,
                           const ModelConfig& config) {
  switch (component) {
    case Component::TextEncoder: return "text_model." + original;
    case Component::UNet: return unet_to_diffusers(original, config.unet);
    case Component::Vae: return vae_to_diffusers(original, config.vae);
  }
  return original;
}

std::string data_dir() {
  if (const char* env = std::getenv("P2L_DATA")) return env;
#ifdef P2L_DATA_DIR
  return P2L_DATA_DIR;
#else
  return "data";
#endif
}

Layout detect_layout(const std::string& path) {
  const fs::path p(path);
  if (!fs::exists(p)) throw Error(path + ": no such file or folder");
  if (fs::is_directory(p)) {
    // model_index.json is what makes a folder a pipeline in diffusers too: without it, or with a
    // broken one, from_pretrained refuses the folder, so p2l does as well.
    const fs::path index = p / "model_index.json";
    if (!fs::exists(index))
      throw Error(path + ": not a model (a folder needs model_index.json and unet/, vae/, "
                  "text_encoder/ as diffusers writes them)");
    const auto j = io::read_json(index.string());
    if (!j.is_object() || !j.contains("_class_name") || !j["_class_name"].is_string())
      throw Error(index.string() + ": not a diffusers pipeline index (no \"_class_name\")");
    return Layout::Diffusers;
  }
  if (p.extension() == ".safetensors" || io::is_torch_checkpoint(path)) return Layout::SingleFile;
  throw Error(path +
              ": not a model (expected a diffusers folder, or a .safetensors, .ckpt, .pt, "
              ".pth or .bin file)");
}

namespace {

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
      else return shape_str(v);
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

void load_module_tensors(torch::nn::Module& module, const TensorLookup& lookup,
                         const std::function<std::string(const std::string&)>& display,
                         const std::string& source) {
  torch::NoGradGuard no_grad;
  std::vector<std::string> missing;
  for (auto& item : module.named_parameters(/*recurse=*/true)) {
    const auto& name = item.key();
    auto& param = item.value();
    auto stored = lookup(name);
    if (!stored.defined()) {
      missing.push_back(display(name) + " (expected shape " + shape_str(param.sizes()) + ")");
      continue;
    }
    auto fitted = fit_stored_shape(name, stored, param.sizes());
    if (!fitted.defined())
      throw Error(source + ": tensor '" + display(name) + "' has shape " +
                  shape_str(stored.sizes()) + " but the model expects " +
                  shape_str(param.sizes()));
    if (!fitted.is_floating_point())
      throw Error(source + ": tensor '" + display(name) + "' is not a floating-point tensor");
    param.copy_(fitted.to(param.device(), param.scalar_type()));
  }
  if (!missing.empty()) {
    std::string msg = source + ": missing tensor " + missing.front();
    if (missing.size() > 1) msg += " and " + std::to_string(missing.size() - 1) + " more";
    throw Error(msg);
  }
}

namespace {

// A diffusers folder's configuration, from its config.json files.
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

// A single file's configuration: its YAML (--config, else <name>.yaml beside it) with the
// tensor shapes, else SD v1's head counts with the shapes.
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

// The sizes a diffusers folder's config.json files claim, checked against its weight files'
// headers before any module is built: a config that lies (a million layers, a wider network)
// would otherwise allocate what the weights never held.
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

StableDiffusion load_diffusers(const fs::path& dir, const LoadOptions& options) {
  const ModelConfig config = diffusers_config(dir);
  std::map<Component, std::unique_ptr<io::WeightFile>> files;
  std::map<Component, Shapes> shapes;
  for (const auto& [component, stem] :
       {std::pair{Component::TextEncoder, "model"}, std::pair{Component::UNet, "diffusion_pytorch_model"},
        std::pair{Component::Vae, "diffusion_pytorch_model"}}) {
    files[component] = std::make_unique<io::WeightFile>(
        component_weights(dir / component_name(component), stem));
    for (const auto& info : files[component]->tensors()) shapes[component][info.name] = info.shape;
  }
  check_config_against_weights(config, dir, shapes);
  // Made in the computing type and moved to the device first: each stored tensor then goes
  // straight there (no float32 host copy of a bf16 GPU model).
  StableDiffusion sd = StableDiffusion::create(config, options.dtype);
  sd.to(options.device, options.dtype);
  sd.layout = Layout::Diffusers;
  sd.source = dir.string();
  std::set<std::string> dtypes;
  struct Part {
    Component component;
    torch::nn::Module* module;
  };
  const std::vector<Part> parts = {{Component::TextEncoder, sd.text_encoder.ptr().get()},
                                   {Component::UNet, sd.unet.ptr().get()},
                                   {Component::Vae, sd.vae.ptr().get()}};
  for (const auto& part : parts) {
    const io::WeightFile& file = *files.at(part.component);
    std::map<std::string, std::string> stored_name;  // normalised diffusers name → stored name
    std::set<std::string> available, used;
    for (const auto& info : file.tensors()) {
      stored_name[normalise_diffusers_name(part.component, info.name)] = info.name;
      available.insert(info.name);
      dtypes.insert(io::dtype_name(info.dtype));
    }
    auto to_stored = [&](const std::string& original) {
      const auto it = stored_name.find(diffusers_name(part.component, original, config));
      return it == stored_name.end() ? diffusers_name(part.component, original, config)
                                     : it->second;
    };
    load_module_tensors(
        *part.module,
        [&](const std::string& original) -> torch::Tensor {
          const auto it = stored_name.find(diffusers_name(part.component, original, config));
          if (it == stored_name.end()) return {};
          used.insert(it->second);
          return file.load(it->second);
        },
        to_stored, file.path());
    report_unused(available, used, file.path());
  }
  sd.storage_dtype = dtype_summary(dtypes);
  sd.tokenizer =
      find_tokenizer((dir / "tokenizer").string(), config.text.vocab_size, options);
  return sd;
}

StableDiffusion load_single_file(const fs::path& path, const LoadOptions& options) {
  const io::WeightFile file(path.string());
  Shapes shapes;
  std::set<std::string> dtypes, available, used;
  for (const auto& info : file.tensors()) {
    shapes[info.name] = info.shape;
    available.insert(info.name);
  }
  const ModelConfig config = single_file_config(path, shapes, options);
  StableDiffusion sd = StableDiffusion::create(config, options.dtype);  // as load_diffusers
  sd.to(options.device, options.dtype);
  sd.layout = Layout::SingleFile;
  sd.source = path.string();
  const std::string text = text_prefix(shapes);
  const std::vector<std::pair<std::string, torch::nn::Module*>> parts = {
      {text, sd.text_encoder.ptr().get()},
      {single_file_prefix(Component::UNet), sd.unet.ptr().get()},
      {single_file_prefix(Component::Vae), sd.vae.ptr().get()}};
  for (const auto& [prefix, module] : parts) {
    load_module_tensors(
        *module,
        [&, prefix = prefix](const std::string& original) -> torch::Tensor {
          const std::string key = prefix + original;
          if (!file.contains(key)) return {};
          used.insert(key);
          dtypes.insert(io::dtype_name(file.info(key).dtype));
          return file.load(key);
        },
        [prefix = prefix](const std::string& original) { return prefix + original; },
        file.path());
  }
  report_unused(available, used, file.path());
  sd.storage_dtype = dtype_summary(dtypes);
  sd.tokenizer = find_tokenizer("", config.text.vocab_size, options);
  return sd;
}

}  // namespace

ModelSummary describe_model(const std::string& path, const LoadOptions& options) {
  ModelSummary m;
  m.layout = detect_layout(path);
  m.source = path;
  std::set<std::string> dtypes;
  // Floating tensors only: the integer buffers some files carry (position_ids) are no weights.
  auto add = [&](const io::TensorInfo& info, int64_t& count) {
    if (!c10::isFloatingType(io::to_torch(info.dtype))) return;
    int64_t n = 1;
    for (const auto d : info.shape) n *= d;
    count += n;
    dtypes.insert(io::dtype_name(info.dtype));
  };
  if (m.layout == Layout::Diffusers) {
    const fs::path dir(path);
    m.config = diffusers_config(dir);
    const std::vector<std::tuple<Component, const char*, int64_t*>> parts = {
        {Component::TextEncoder, "model", &m.text_parameters},
        {Component::UNet, "diffusion_pytorch_model", &m.unet_parameters},
        {Component::Vae, "diffusion_pytorch_model", &m.vae_parameters}};
    for (const auto& [component, stem, count] : parts) {
      const io::WeightFile file(component_weights(dir / component_name(component), stem));
      for (const auto& info : file.tensors()) add(info, *count);
    }
    m.tokenizer = fs::exists(dir / "tokenizer" / "vocab.json") ||
                  fs::exists(fs::path(data_dir()) / "clip-tokenizer" / "vocab.json");
  } else {
    const io::WeightFile file(path);
    Shapes shapes;
    for (const auto& info : file.tensors()) shapes[info.name] = info.shape;
    m.config = single_file_config(fs::path(path), shapes, options);
    const auto text = text_prefix(shapes);
    for (const auto& info : file.tensors()) {
      if (starts_with(info.name, text))
        add(info, m.text_parameters);
      else if (starts_with(info.name, single_file_prefix(Component::UNet)))
        add(info, m.unet_parameters);
      else if (starts_with(info.name, single_file_prefix(Component::Vae)))
        add(info, m.vae_parameters);
    }
    m.tokenizer = fs::exists(fs::path(data_dir()) / "clip-tokenizer" / "vocab.json");
  }
  m.storage_dtype = dtype_summary(dtypes);
  return m;
}

StableDiffusion load_stable_diffusion(const std::string& path, const LoadOptions& options) {
  StableDiffusion sd = detect_layout(path) == Layout::Diffusers
                           ? load_diffusers(fs::path(path), options)
                           : load_single_file(fs::path(path), options);
  sd.to(options.device, options.dtype);
  sd.eval();
  return sd;
}

namespace {

// Named tensors of a component in the given layout, in the dtype to store.
std::vector<std::pair<std::string, torch::Tensor>> component_tensors(
    torch::nn::Module& module, Component component, const ModelConfig& config, bool diffusers,
    torch::ScalarType storage) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : module.named_parameters(true)) {
    auto t = item.value().detach().to(torch::kCPU, storage).contiguous();
    std::string name;
    if (diffusers) {
      name = diffusers_name(component, item.key(), config);
      if (is_vae_attention(item.key()) && t.dim() == 4) t = t.flatten(1);  // [C,C,1,1] → [C,C]
    } else {
      name = single_file_prefix(component) + item.key();
    }
    out.emplace_back(name, t);
  }
  return out;
}

}  // namespace

void save_module_weights(torch::nn::Module& module, const std::string& path,
                         const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& item : module.named_parameters(true))
    tensors.emplace_back(item.key(), item.value().detach().to(torch::kCPU).contiguous());
  io::save_safetensors(path, tensors, metadata);
}

void load_module_weights(torch::nn::Module& module, const std::string& path) {
  const io::WeightFile file(path);
  load_module_tensors(
      module,
      [&](const std::string& name) -> torch::Tensor {
        return file.contains(name) ? file.load(name) : torch::Tensor();
      },
      [](const std::string& name) { return name; }, file.path());
}

void save_diffusers(StableDiffusion& model, const std::string& dir_path, torch::ScalarType storage,
                    const std::string& tokenizer_source_dir) {
  const fs::path dir(dir_path);
  const auto& c = model.config;
  for (const char* sub : {"unet", "vae", "text_encoder", "scheduler"})
    fs::create_directories(dir / sub);

  auto unet = c.unet.to_json();
  unet["_class_name"] = "UNet2DConditionModel";
  io::write_json((dir / "unet" / "config.json").string(), unet);
  io::save_safetensors((dir / "unet" / "diffusion_pytorch_model.safetensors").string(),
                       component_tensors(*model.unet, Component::UNet, c, true, storage));

  auto vae = c.vae.to_json();
  vae["_class_name"] = "AutoencoderKL";
  io::write_json((dir / "vae" / "config.json").string(), vae);
  io::save_safetensors((dir / "vae" / "diffusion_pytorch_model.safetensors").string(),
                       component_tensors(*model.vae, Component::Vae, c, true, storage));

  auto text = c.text.to_json();
  text["architectures"] = {"CLIPTextModel"};
  text["model_type"] = "clip_text_model";
  io::write_json((dir / "text_encoder" / "config.json").string(), text);
  io::save_safetensors(
      (dir / "text_encoder" / "model.safetensors").string(),
      component_tensors(*model.text_encoder, Component::TextEncoder, c, true, storage));

  io::write_json((dir / "scheduler" / "scheduler_config.json").string(), c.schedule.to_json());
  nlohmann::json index = {{"_class_name", "StableDiffusionPipeline"},
                          {"scheduler", {"diffusers", "DDIMScheduler"}},
                          {"text_encoder", {"transformers", "CLIPTextModel"}},
                          {"tokenizer", {"transformers", "CLIPTokenizer"}},
                          {"unet", {"diffusers", "UNet2DConditionModel"}},
                          {"vae", {"diffusers", "AutoencoderKL"}},
                          {"safety_checker", {nullptr, nullptr}},
                          {"feature_extractor", {nullptr, nullptr}},
                          {"requires_safety_checker", false}};
  io::write_json((dir / "model_index.json").string(), index);
  if (!tokenizer_source_dir.empty()) {
    fs::create_directories(dir / "tokenizer");
    for (const char* name : {"vocab.json", "merges.txt"})
      if (!fs::exists(dir / "tokenizer" / name) ||
          !fs::equivalent(fs::path(tokenizer_source_dir) / name, dir / "tokenizer" / name))
        fs::copy_file(fs::path(tokenizer_source_dir) / name, dir / "tokenizer" / name,
                    fs::copy_options::overwrite_existing);
  }
}

void save_single_file(StableDiffusion& model, const std::string& path, torch::ScalarType storage) {
  std::vector<std::pair<std::string, torch::Tensor>> all;
  const auto& c = model.config;
  for (auto [component, module] :
       std::vector<std::pair<Component, torch::nn::Module*>>{
           {Component::TextEncoder, model.text_encoder.ptr().get()},
           {Component::UNet, model.unet.ptr().get()},
           {Component::Vae, model.vae.ptr().get()}}) {
    auto part = component_tensors(*module, component, c, false, storage);
    all.insert(all.end(), part.begin(), part.end());
  }
  io::save_safetensors(path, all, {{"format", "pt"}});
}

ConvertSummary convert_model(const std::string& input, const std::string& output,
                             const ConvertOptions& options) {
  const fs::path out(output);
  const bool single = out.extension() == ".safetensors";
  if (!single && out.has_extension() && !fs::is_directory(out))
    throw Error(output + ": convert writes a .safetensors file or a diffusers folder (DIR/)");
  if (fs::exists(out) && fs::exists(input) && fs::equivalent(out, input))
    throw Error(output + ": the output is the input");
  ConvertOptions o = options;
  o.load.device = torch::kCPU;
  o.load.dtype = torch::kFloat;  // F16/BF16 → F32 → F16/BF16 is exact
  StableDiffusion sd = load_stable_diffusion(input, o.load);

  ConvertSummary summary;
  summary.layout = single ? Layout::SingleFile : Layout::Diffusers;
  torch::ScalarType storage = torch::kFloat;
  if (o.half || sd.storage_dtype == "F16")
    storage = torch::kHalf;
  else if (sd.storage_dtype == "BF16")
    storage = torch::kBFloat16;
  summary.storage_dtype = io::dtype_name(io::from_torch(storage));
  if (single) {
    if (out.has_parent_path()) fs::create_directories(out.parent_path());
    save_single_file(sd, output, storage);
    return summary;
  }
  // The tokenizer goes along: the input folder's, --tokenizer, else the one p2l ships.
  std::string tokenizer = o.load.tokenizer_dir;
  const fs::path own = fs::path(input) / "tokenizer";
  if (tokenizer.empty() && fs::exists(own / "vocab.json")) tokenizer = own.string();
  const fs::path shipped = fs::path(data_dir()) / "clip-tokenizer";
  if (tokenizer.empty() && fs::exists(shipped / "vocab.json")) tokenizer = shipped.string();
  save_diffusers(sd, output, storage, tokenizer);
  return summary;
}

}  // namespace p2l::model
