// CLIP text encoder (transformers' CLIPTextModel), the conditioning network of SD v1.
// Parameter names follow the original single-file layout under
// `cond_stage_model.transformer.text_model.`, so a weight's name is its place in this tree.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace p2l::model {

struct ClipTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_layers = 12;
  int64_t num_heads = 12;
  int64_t max_positions = 77;
  double layer_norm_eps = 1e-5;
  std::string hidden_act = "quick_gelu";  // or "gelu"

  // CLIP ViT-L/14's text tower, as in SD v1.x.
  static ClipTextConfig sd_v1();
  // transformers' text_encoder/config.json.
  static ClipTextConfig from_json(const nlohmann::json& config);
  nlohmann::json to_json() const;
  void validate() const;  // throws p2l::Error on inconsistent sizes
};

struct ClipTextOutput {
  torch::Tensor last_hidden_state;           // [B, S, D], after the final layer norm
  std::vector<torch::Tensor> hidden_states;  // embeddings + each layer's output (if requested)
};

class ClipAttentionImpl : public torch::nn::Module {
 public:
  ClipAttentionImpl(int64_t dim, int64_t heads);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& causal_mask);

 private:
  int64_t heads_;
  torch::nn::Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, out_proj_{nullptr};
};
TORCH_MODULE(ClipAttention);

class ClipMlpImpl : public torch::nn::Module {
 public:
  ClipMlpImpl(int64_t dim, int64_t inner, std::string act);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  std::string act_;
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(ClipMlp);

class ClipEncoderLayerImpl : public torch::nn::Module {
 public:
  explicit ClipEncoderLayerImpl(const ClipTextConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& causal_mask);

 private:
  ClipAttention self_attn_{nullptr};
  torch::nn::LayerNorm layer_norm1_{nullptr}, layer_norm2_{nullptr};
  ClipMlp mlp_{nullptr};
};
TORCH_MODULE(ClipEncoderLayer);

class ClipTextModelImpl : public torch::nn::Module {
 public:
  explicit ClipTextModelImpl(const ClipTextConfig& config);

  // ids: [B, S] int64 (S ≤ max_positions). Causal mask only, no padding mask (SD v1).
  ClipTextOutput forward(const torch::Tensor& ids, bool keep_hidden_states = false);
  // The state at the first EOS (argmax of the ids), as transformers' pooler_output.
  static torch::Tensor pooled(const torch::Tensor& last_hidden_state, const torch::Tensor& ids);
  torch::Tensor final_layer_norm(const torch::Tensor& x);

  const ClipTextConfig& config() const { return config_; }

 private:
  ClipTextConfig config_;
  torch::nn::Embedding token_embedding_{nullptr}, position_embedding_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  torch::nn::LayerNorm final_layer_norm_{nullptr};
};
TORCH_MODULE(ClipTextModel);

}  // namespace p2l::model
