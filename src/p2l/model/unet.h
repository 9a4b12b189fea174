// The SD v1 noise-prediction UNet (CompVis `openaimodel.UNetModel` with spatial transformers,
// equal to diffusers' UNet2DConditionModel). Modules are registered under the original
// single-file names (`input_blocks.1.0.in_layers.0`, `middle_block.1.proj_in`, ...), so a
// `model.diffusion_model.*` checkpoint loads by stripping the prefix.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace p2l::model {

struct UNetConfig {
  int64_t in_channels = 4;
  int64_t out_channels = 4;
  // Channels per resolution level (diffusers' block_out_channels; CompVis model_channels·mult).
  std::vector<int64_t> block_out_channels{320, 640, 1280, 1280};
  // Whether each level has spatial transformers (CompVis attention_resolutions).
  std::vector<bool> attention_levels{true, true, true, false};
  int64_t layers_per_block = 2;
  // Number of attention heads. diffusers calls this `attention_head_dim` for SD v1 (a naming
  // quirk): it is the head count, the head size is channels / heads.
  int64_t num_heads = 8;
  // When > 0, a fixed head size instead (CompVis num_head_channels, SD 2.x style).
  int64_t head_channels = -1;
  int64_t context_dim = 768;
  int64_t transformer_depth = 1;
  bool use_linear_projection = false;
  int64_t norm_groups = 32;
  double norm_eps = 1e-5;
  // Latent side the model was trained at (64 for SD v1: 512 px); the default sampling size.
  int64_t sample_size = 64;

  static UNetConfig sd_v1();
  // diffusers' unet/config.json.
  static UNetConfig from_json(const nlohmann::json& config);
  nlohmann::json to_json() const;
  void validate() const;
  int64_t time_embed_dim() const { return 4 * block_out_channels.at(0); }
  int64_t heads_for(int64_t channels) const;
};

// Optional record of intermediate activations under diffusers' names (time_proj, conv_in,
// down_blocks.i, mid_block, up_blocks.i, conv_norm_out), for locating a mismatch.
using ActivationTrace = std::map<std::string, torch::Tensor>;

class ResBlockImpl : public torch::nn::Module {
 public:
  ResBlockImpl(int64_t in_ch, int64_t out_ch, int64_t emb_dim, int64_t groups, double eps);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& emb);

 private:
  torch::nn::Sequential in_layers_{nullptr}, emb_layers_{nullptr}, out_layers_{nullptr};
  torch::nn::Conv2d skip_connection_{nullptr};
};
TORCH_MODULE(ResBlock);

class CrossAttentionImpl : public torch::nn::Module {
 public:
  CrossAttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads, int64_t head_dim);
  // context undefined → self-attention.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context = {});

 private:
  int64_t heads_, head_dim_;
  torch::nn::Linear to_q_{nullptr}, to_k_{nullptr}, to_v_{nullptr};
  torch::nn::Sequential to_out_{nullptr};
};
TORCH_MODULE(CrossAttention);

class GegluImpl : public torch::nn::Module {
 public:
  GegluImpl(int64_t dim_in, int64_t dim_out);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Linear proj_{nullptr};
};
TORCH_MODULE(Geglu);

class BasicTransformerBlockImpl : public torch::nn::Module {
 public:
  BasicTransformerBlockImpl(int64_t dim, int64_t heads, int64_t head_dim, int64_t context_dim);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context);

 private:
  CrossAttention attn1_{nullptr}, attn2_{nullptr};
  torch::nn::Sequential ff_{nullptr};
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr}, norm3_{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

class SpatialTransformerImpl : public torch::nn::Module {
 public:
  SpatialTransformerImpl(int64_t channels, int64_t heads, int64_t head_dim, int64_t depth,
                         int64_t context_dim, bool linear_projection, int64_t groups);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context);

 private:
  bool linear_projection_;
  torch::nn::GroupNorm norm_{nullptr};
  // 1×1 convolutions (SD v1) or linear layers (use_linear_projection); one pair is registered.
  torch::nn::Conv2d proj_in_conv_{nullptr}, proj_out_conv_{nullptr};
  torch::nn::Linear proj_in_linear_{nullptr}, proj_out_linear_{nullptr};
  torch::nn::ModuleList transformer_blocks_{nullptr};
};
TORCH_MODULE(SpatialTransformer);

class DownsampleImpl : public torch::nn::Module {
 public:
  explicit DownsampleImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d op_{nullptr};
};
TORCH_MODULE(Downsample);

class UpsampleImpl : public torch::nn::Module {
 public:
  explicit UpsampleImpl(int64_t channels);
  // Nearest up-sampling to `size` (the matching skip tensor's size), then a 3×3 conv.
  torch::Tensor forward(const torch::Tensor& x, at::IntArrayRef size);

 private:
  torch::nn::Conv2d conv_{nullptr};
};
TORCH_MODULE(Upsample);

class UNetImpl : public torch::nn::Module {
 public:
  explicit UNetImpl(const UNetConfig& config);

  // x: [B, C, h, w] latents; t: timesteps (scalar or [B]); context: [B, S, context_dim].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t,
                        const torch::Tensor& context, ActivationTrace* trace = nullptr);

  const UNetConfig& config() const { return config_; }

  // Dropout probability of every residual block (CompVis' `dropout`), a training regulariser:
  // it acts only in training mode and changes no weight names.
  void set_dropout(double p);

 private:
  torch::Tensor run_block(torch::nn::ModuleListImpl& block, torch::Tensor h,
                          const torch::Tensor& emb, const torch::Tensor& context,
                          at::IntArrayRef upsample_size = {});

  UNetConfig config_;
  torch::nn::Sequential time_embed_{nullptr};
  torch::nn::ModuleList input_blocks_{nullptr}, middle_block_{nullptr}, output_blocks_{nullptr};
  torch::nn::Sequential out_{nullptr};
};
TORCH_MODULE(UNet);

// Sinusoidal timestep embedding, [cos, sin] order (diffusers flip_sin_to_cos, CompVis).
torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim);

}  // namespace p2l::model
