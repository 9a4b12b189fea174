#include "p2l/model/clip_text.h"

#include <nlohmann/json.hpp>

#include <limits>

#include "p2l/error.h"
#include "p2l/io/json_file.h"
#include "p2l/model/config_bounds.h"
#include "p2l/model/attention.h"
#include "p2l/model/layers.h"

namespace p2l::model {

namespace nn = torch::nn;

ClipTextConfig ClipTextConfig::sd_v1() { return ClipTextConfig{}; }

namespace {

constexpr char kTextConfig[] = "text encoder config";

ClipTextConfig clip_text_config_from_json(const nlohmann::json& j) {
  ClipTextConfig c;
  c.vocab_size = io::json_int(j, "vocab_size", c.vocab_size, kTextConfig);
  c.hidden_size = io::json_int(j, "hidden_size", c.hidden_size, kTextConfig);
  c.intermediate_size = io::json_int(j, "intermediate_size", c.intermediate_size, kTextConfig);
  c.num_layers = io::json_int(j, "num_hidden_layers", c.num_layers, kTextConfig);
  c.num_heads = io::json_int(j, "num_attention_heads", c.num_heads, kTextConfig);
  c.max_positions = io::json_int(j, "max_position_embeddings", c.max_positions, kTextConfig);
  c.layer_norm_eps = j.value("layer_norm_eps", c.layer_norm_eps);
  c.hidden_act = j.value("hidden_act", c.hidden_act);
  c.validate();
  return c;
}

}  // namespace

ClipTextConfig ClipTextConfig::from_json(const nlohmann::json& j) {
  // A value of the wrong type is nlohmann's type_error; it is a defect of the file like any other.
  try {
    return clip_text_config_from_json(j);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string(kTextConfig) + ": " + e.what());
  }
}

nlohmann::json ClipTextConfig::to_json() const {
  return {{"vocab_size", vocab_size},       {"hidden_size", hidden_size},
          {"intermediate_size", intermediate_size}, {"num_hidden_layers", num_layers},
          {"num_attention_heads", num_heads}, {"max_position_embeddings", max_positions},
          {"layer_norm_eps", layer_norm_eps}, {"hidden_act", hidden_act}};
}

void ClipTextConfig::validate() const {
  if (vocab_size <= 0 || hidden_size <= 0 || intermediate_size <= 0 || num_layers <= 0 ||
      num_heads <= 0 || max_positions <= 0)
    throw Error("text encoder config: sizes must be positive");
  // Far above every released SD-family text encoder (CLIP ViT-L: 12 layers × 768, OpenCLIP bigG:
  // 32 × 1280): a lying config.json is refused before a module is built.
  const auto at_most = [](int64_t value, int64_t bound, const char* name) {
    check_bound(value, bound, "text encoder config", name);
  };
  at_most(vocab_size, 1 << 20, "vocab_size");
  at_most(hidden_size, 8192, "hidden_size");
  at_most(intermediate_size, 32768, "intermediate_size");
  at_most(num_layers, 64, "num_hidden_layers");
  at_most(num_heads, 128, "num_attention_heads");
  at_most(max_positions, 4096, "max_position_embeddings");
  if (hidden_size % num_heads != 0)
    throw Error("text encoder config: hidden_size " + std::to_string(hidden_size) +
                " is not divisible by num_attention_heads " + std::to_string(num_heads));
  if (hidden_act != "quick_gelu" && hidden_act != "gelu")
    throw Error("text encoder config: unsupported hidden_act '" + hidden_act + "'");
}

ClipAttentionImpl::ClipAttentionImpl(int64_t dim, int64_t heads) : heads_(heads) {
  q_proj_ = register_module("q_proj", nn::Linear(dim, dim));
  k_proj_ = register_module("k_proj", nn::Linear(dim, dim));
  v_proj_ = register_module("v_proj", nn::Linear(dim, dim));
  out_proj_ = register_module("out_proj", nn::Linear(dim, dim));
}

torch::Tensor ClipAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& causal_mask) {
  const auto b = x.size(0), s = x.size(1), d = x.size(2), hd = d / heads_;
  auto split = [&](const torch::Tensor& t) { return t.view({b, s, heads_, hd}).transpose(1, 2); };
  // transformers scales q before the product.
  auto out = attention(split(q_proj_(x)), split(k_proj_(x)), split(v_proj_(x)), ScaleAt::kQuery,
                       causal_mask)
                 .transpose(1, 2)
                 .reshape({b, s, d});
  return out_proj_(out);
}

ClipMlpImpl::ClipMlpImpl(int64_t dim, int64_t inner, std::string act) : act_(std::move(act)) {
  fc1_ = register_module("fc1", nn::Linear(dim, inner));
  fc2_ = register_module("fc2", nn::Linear(inner, dim));
}

torch::Tensor ClipMlpImpl::forward(const torch::Tensor& x) {
  auto h = fc1_(x);
  // CLIP's QuickGELU: x·σ(1.702x).
  h = act_ == "quick_gelu" ? h * torch::sigmoid(1.702 * h) : torch::gelu(h);
  return fc2_(h);
}

ClipEncoderLayerImpl::ClipEncoderLayerImpl(const ClipTextConfig& c) {
  const std::vector<int64_t> shape{c.hidden_size};
  self_attn_ = register_module("self_attn", ClipAttention(c.hidden_size, c.num_heads));
  layer_norm1_ = register_module(
      "layer_norm1", nn::LayerNorm(nn::LayerNormOptions(shape).eps(c.layer_norm_eps)));
  mlp_ = register_module("mlp", ClipMlp(c.hidden_size, c.intermediate_size, c.hidden_act));
  layer_norm2_ = register_module(
      "layer_norm2", nn::LayerNorm(nn::LayerNormOptions(shape).eps(c.layer_norm_eps)));
}

torch::Tensor ClipEncoderLayerImpl::forward(const torch::Tensor& x,
                                            const torch::Tensor& causal_mask) {
  auto h = x + self_attn_(layer_norm1_(x), causal_mask);
  return h + mlp_(layer_norm2_(h));
}

// transformers nests the modules as text_model.{embeddings,encoder}.*; the holders below give
// the parameters those names without extra forward code.
ClipTextModelImpl::ClipTextModelImpl(const ClipTextConfig& config) : config_(config) {
  config_.validate();
  auto embeddings = register_module("embeddings", std::make_shared<Holder>());
  token_embedding_ = embeddings->register_module(
      "token_embedding", nn::Embedding(config_.vocab_size, config_.hidden_size));
  position_embedding_ = embeddings->register_module(
      "position_embedding", nn::Embedding(config_.max_positions, config_.hidden_size));
  auto encoder = register_module("encoder", std::make_shared<Holder>());
  layers_ = encoder->register_module("layers", nn::ModuleList());
  for (int64_t i = 0; i < config_.num_layers; ++i) layers_->push_back(ClipEncoderLayer(config_));
  final_layer_norm_ = register_module(
      "final_layer_norm",
      nn::LayerNorm(nn::LayerNormOptions({config_.hidden_size}).eps(config_.layer_norm_eps)));
}

ClipTextOutput ClipTextModelImpl::forward(const torch::Tensor& ids, bool keep_hidden_states) {
  if (ids.dim() != 2 || ids.scalar_type() != torch::kLong)
    throw Error("text encoder: token ids must be an int64 [batch, length] tensor");
  const int64_t s = ids.size(1);
  if (s > config_.max_positions)
    throw Error("text encoder: " + std::to_string(s) + " tokens exceed the " +
                std::to_string(config_.max_positions) + " positions");
  const auto dev = token_embedding_->weight.device();
  const auto positions = torch::arange(s, torch::TensorOptions().dtype(torch::kLong).device(dev));
  auto x = token_embedding_(ids.to(dev)) + position_embedding_(positions).unsqueeze(0);
  // Causal mask: the most negative finite value (of the type computed in) above the diagonal,
  // as transformers does.
  const auto type = x.scalar_type();
  const double lowest = type == torch::kHalf ? double(std::numeric_limits<c10::Half>::lowest())
                        : type == torch::kBFloat16
                            ? double(std::numeric_limits<c10::BFloat16>::lowest())
                            : double(std::numeric_limits<float>::lowest());
  const auto fopts = torch::TensorOptions().dtype(type).device(dev);
  auto mask = torch::full({s, s}, lowest, fopts).triu(1);

  ClipTextOutput out;
  if (keep_hidden_states) out.hidden_states.push_back(x);
  for (const auto& layer : *layers_) {
    x = layer->as<ClipEncoderLayerImpl>()->forward(x, mask);
    if (keep_hidden_states) out.hidden_states.push_back(x);
  }
  out.last_hidden_state = final_layer_norm_(x);
  return out;
}

torch::Tensor ClipTextModelImpl::final_layer_norm(const torch::Tensor& x) {
  return final_layer_norm_(x);
}

torch::Tensor ClipTextModelImpl::pooled(const torch::Tensor& last_hidden_state,
                                        const torch::Tensor& ids) {
  auto eos = ids.to(last_hidden_state.device()).argmax(-1);
  auto rows = torch::arange(ids.size(0), eos.options());
  return last_hidden_state.index({rows, eos});
}

}  // namespace p2l::model
