#include "p2l/model/weight_names.h"

#include <regex>
#include <sstream>
#include <vector>

#include "p2l/error.h"

namespace p2l::model {

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

}  // namespace

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

}  // namespace p2l::model
