// The KL autoencoder of latent diffusion (CompVis `AutoencoderKL`, diffusers' AutoencoderKL).
// Parameter names follow the original single-file layout under `first_stage_model.`:
// encoder.down.N.block.M, encoder.mid.attn_1.{q,k,v,proj_out} (1×1 convolutions),
// decoder.up.N (numbered from the lowest resolution level, as CompVis does), quant_conv, ...
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace p2l::model {

struct VaeConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t latent_channels = 4;
  std::vector<int64_t> block_out_channels{128, 256, 512, 512};
  int64_t layers_per_block = 2;  // the decoder has one more per level
  int64_t norm_groups = 32;
  double scaling_factor = 0.18215;  // SD v1's latent scale s

  static VaeConfig sd_v1();
  // diffusers' vae/config.json.
  static VaeConfig from_json(const nlohmann::json& config);
  nlohmann::json to_json() const;
  void validate() const;
  // Spatial down-sampling factor f (8 for SD).
  int64_t downsampling_factor() const {
    return int64_t{1} << (block_out_channels.size() - 1);
  }
};

using ActivationTrace = std::map<std::string, torch::Tensor>;

class VaeResnetBlockImpl : public torch::nn::Module {
 public:
  VaeResnetBlockImpl(int64_t in_ch, int64_t out_ch, int64_t groups);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::GroupNorm norm1_{nullptr}, norm2_{nullptr};
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, nin_shortcut_{nullptr};
};
TORCH_MODULE(VaeResnetBlock);

// Single-head self-attention over all positions, q/k/v/proj_out as 1×1 convolutions.
class VaeAttentionImpl : public torch::nn::Module {
 public:
  VaeAttentionImpl(int64_t channels, int64_t groups);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::GroupNorm norm_{nullptr};
  torch::nn::Conv2d q_{nullptr}, k_{nullptr}, v_{nullptr}, proj_out_{nullptr};
};
TORCH_MODULE(VaeAttention);

class VaeMidBlockImpl : public torch::nn::Module {
 public:
  VaeMidBlockImpl(int64_t channels, int64_t groups);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  VaeResnetBlock block_1_{nullptr}, block_2_{nullptr};
  VaeAttention attn_1_{nullptr};
};
TORCH_MODULE(VaeMidBlock);

class VaeEncoderImpl : public torch::nn::Module {
 public:
  explicit VaeEncoderImpl(const VaeConfig& config);
  // Returns the 2·latent_channels moments before quant_conv.
  torch::Tensor forward(const torch::Tensor& x, ActivationTrace* trace = nullptr);

 private:
  torch::nn::Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  torch::nn::ModuleList down_{nullptr};
  VaeMidBlock mid_{nullptr};
  torch::nn::GroupNorm norm_out_{nullptr};
};
TORCH_MODULE(VaeEncoder);

class VaeDecoderImpl : public torch::nn::Module {
 public:
  explicit VaeDecoderImpl(const VaeConfig& config);
  torch::Tensor forward(const torch::Tensor& z, ActivationTrace* trace = nullptr);

 private:
  torch::nn::Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  torch::nn::ModuleList up_{nullptr};
  VaeMidBlock mid_{nullptr};
  torch::nn::GroupNorm norm_out_{nullptr};
};
TORCH_MODULE(VaeDecoder);

struct Posterior {
  torch::Tensor mean;    // [B, latent_channels, H/f, W/f], unscaled
  torch::Tensor logvar;  // clamped to [-30, 20] as CompVis / diffusers do
};

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  explicit AutoencoderKLImpl(const VaeConfig& config);

  // Image in [-1, 1] → posterior (no scaling factor applied).
  Posterior encode(const torch::Tensor& image, ActivationTrace* trace = nullptr);
  // Latent (unscaled) → image, unclamped.
  torch::Tensor decode(const torch::Tensor& latent, ActivationTrace* trace = nullptr);

  // SPEC's E(x) = s·mean and D(z) = decode(z / s).
  torch::Tensor encode_mean(const torch::Tensor& image) {
    return encode(image).mean * config_.scaling_factor;
  }
  torch::Tensor decode_scaled(const torch::Tensor& z) {
    return decode(z / config_.scaling_factor);
  }

  const VaeConfig& config() const { return config_; }

 private:
  VaeConfig config_;
  VaeEncoder encoder_{nullptr};
  VaeDecoder decoder_{nullptr};
  torch::nn::Conv2d quant_conv_{nullptr}, post_quant_conv_{nullptr};
};
TORCH_MODULE(AutoencoderKL);

}  // namespace p2l::model
