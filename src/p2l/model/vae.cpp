#include "p2l/model/vae.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "p2l/error.h"
#include "p2l/io/json_file.h"
#include "p2l/model/config_bounds.h"
#include "p2l/model/attention.h"
#include "p2l/model/layers.h"

namespace p2l::model {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

namespace {
// Every GroupNorm of the autoencoder uses eps 1e-6 (CompVis Normalize, diffusers' VAE).
constexpr double kVaeNormEps = 1e-6;
}  // namespace

VaeConfig VaeConfig::sd_v1() { return VaeConfig{}; }

namespace {

constexpr char kVaeConfig[] = "vae config";

VaeConfig vae_config_from_json(const nlohmann::json& j) {
  VaeConfig c;
  c.in_channels = io::json_int(j, "in_channels", c.in_channels, kVaeConfig);
  c.out_channels = io::json_int(j, "out_channels", c.out_channels, kVaeConfig);
  c.latent_channels = io::json_int(j, "latent_channels", c.latent_channels, kVaeConfig);
  if (j.contains("block_out_channels"))
    c.block_out_channels = io::json_int_list(j["block_out_channels"], kVaeConfig, "block_out_channels");
  c.layers_per_block = io::json_int(j, "layers_per_block", c.layers_per_block, kVaeConfig);
  c.norm_groups = io::json_int(j, "norm_num_groups", c.norm_groups, kVaeConfig);
  c.scaling_factor = j.value("scaling_factor", c.scaling_factor);
  for (const char* key : {"down_block_types", "up_block_types"}) {
    if (!j.contains(key)) continue;
    for (const auto& type : j[key]) {
      const auto name = type.get<std::string>();
      if (name != "DownEncoderBlock2D" && name != "UpDecoderBlock2D")
        throw Error("vae config: unsupported block type '" + name + "'");
    }
  }
  c.validate();
  return c;
}

}  // namespace

VaeConfig VaeConfig::from_json(const nlohmann::json& j) {
  // A value of the wrong type is nlohmann's type_error; it is a defect of the file like any other.
  try {
    return vae_config_from_json(j);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string(kVaeConfig) + ": " + e.what());
  }
}

nlohmann::json VaeConfig::to_json() const {
  return {{"in_channels", in_channels},
          {"out_channels", out_channels},
          {"latent_channels", latent_channels},
          {"block_out_channels", block_out_channels},
          {"down_block_types", std::vector<std::string>(block_out_channels.size(), "DownEncoderBlock2D")},
          {"up_block_types", std::vector<std::string>(block_out_channels.size(), "UpDecoderBlock2D")},
          {"layers_per_block", layers_per_block},
          {"norm_num_groups", norm_groups},
          {"scaling_factor", scaling_factor}};
}

void VaeConfig::validate() const {
  const auto fail = [](const std::string& m) { throw Error("vae config: " + m); };
  if (block_out_channels.empty()) fail("block_out_channels is empty");
  if (in_channels <= 0 || out_channels <= 0 || latent_channels <= 0 || layers_per_block <= 0 ||
      norm_groups <= 0)
    fail("sizes must be positive");
  // Far above every released SD-family autoencoder (SD v1: 4 levels up to 512 channels).
  const auto at_most = [](int64_t value, int64_t bound, const std::string& name) {
    check_bound(value, bound, "vae config", name);
  };
  at_most(static_cast<int64_t>(block_out_channels.size()), 8, "the number of levels");
  for (auto ch : block_out_channels) at_most(ch, 4096, "block_out_channels");
  at_most(layers_per_block, 16, "layers_per_block");
  at_most(std::max({in_channels, out_channels, latent_channels}), 64, "in/out/latent_channels");
  for (auto ch : block_out_channels)
    if (ch <= 0 || ch % norm_groups != 0)
      fail("channels " + std::to_string(ch) + " not divisible by " +
           std::to_string(norm_groups) + " groups");
  if (!(scaling_factor > 0) || !std::isfinite(scaling_factor)) fail("scaling_factor must be > 0");
}

VaeResnetBlockImpl::VaeResnetBlockImpl(int64_t in_ch, int64_t out_ch, int64_t groups) {
  norm1_ = register_module("norm1", group_norm(groups, in_ch, kVaeNormEps));
  conv1_ = register_module("conv1", conv(in_ch, out_ch, 3, 1, 1));
  norm2_ = register_module("norm2", group_norm(groups, out_ch, kVaeNormEps));
  conv2_ = register_module("conv2", conv(out_ch, out_ch, 3, 1, 1));
  if (in_ch != out_ch) nin_shortcut_ = register_module("nin_shortcut", conv(in_ch, out_ch, 1));
}

torch::Tensor VaeResnetBlockImpl::forward(const torch::Tensor& x) {
  auto h = conv1_(torch::silu(norm1_(x)));
  h = conv2_(torch::silu(norm2_(h)));
  return (nin_shortcut_ ? nin_shortcut_(x) : x) + h;
}

VaeAttentionImpl::VaeAttentionImpl(int64_t channels, int64_t groups) {
  norm_ = register_module("norm", group_norm(groups, channels, kVaeNormEps));
  q_ = register_module("q", conv(channels, channels, 1));
  k_ = register_module("k", conv(channels, channels, 1));
  v_ = register_module("v", conv(channels, channels, 1));
  proj_out_ = register_module("proj_out", conv(channels, channels, 1));
}

torch::Tensor VaeAttentionImpl::forward(const torch::Tensor& x) {
  const auto b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  auto hn = norm_(x);
  // One head of width c: [B, 1, hw, c].
  auto tokens = [&](const torch::Tensor& t) {
    return t.reshape({b, 1, c, h * w}).transpose(2, 3);
  };
  auto out = attention(tokens(q_(hn)), tokens(k_(hn)), tokens(v_(hn)), ScaleAt::kScores)
                 .squeeze(1)
                 .transpose(1, 2)
                 .reshape({b, c, h, w});
  return x + proj_out_(out);
}

VaeMidBlockImpl::VaeMidBlockImpl(int64_t channels, int64_t groups) {
  block_1_ = register_module("block_1", VaeResnetBlock(channels, channels, groups));
  attn_1_ = register_module("attn_1", VaeAttention(channels, groups));
  block_2_ = register_module("block_2", VaeResnetBlock(channels, channels, groups));
}

torch::Tensor VaeMidBlockImpl::forward(const torch::Tensor& x) {
  return block_2_(attn_1_(block_1_(x)));
}

// One resolution level: `block` (resnets) and an optional `downsample`/`upsample` conv.
struct VaeLevel : nn::Module {
  nn::ModuleList block{nullptr};
  nn::Conv2d resample{nullptr};
  bool down = true;
};

VaeEncoderImpl::VaeEncoderImpl(const VaeConfig& c) {
  const auto& chans = c.block_out_channels;
  conv_in_ = register_module("conv_in", conv(c.in_channels, chans[0], 3, 1, 1));
  down_ = register_module("down", nn::ModuleList());
  int64_t ch = chans[0];
  for (size_t level = 0; level < chans.size(); ++level) {
    auto lv = std::make_shared<VaeLevel>();
    lv->block = lv->register_module("block", nn::ModuleList());
    for (int64_t r = 0; r < c.layers_per_block; ++r) {
      lv->block->push_back(VaeResnetBlock(ch, chans[level], c.norm_groups));
      ch = chans[level];
    }
    if (level + 1 != chans.size()) {
      auto holder = lv->register_module("downsample", std::make_shared<Holder>());
      lv->resample = holder->register_module("conv", conv(ch, ch, 3, 2, 0));
    }
    down_->push_back(lv);
  }
  mid_ = register_module("mid", VaeMidBlock(ch, c.norm_groups));
  norm_out_ = register_module("norm_out", group_norm(c.norm_groups, ch, kVaeNormEps));
  conv_out_ = register_module("conv_out", conv(ch, 2 * c.latent_channels, 3, 1, 1));
}

torch::Tensor VaeEncoderImpl::forward(const torch::Tensor& x, ActivationTrace* trace) {
  auto record = [&](const std::string& name, const torch::Tensor& v) {
    if (trace) (*trace)["encoder." + name] = v;
  };
  auto h = conv_in_(x);
  record("conv_in", h);
  for (size_t i = 0; i < down_->size(); ++i) {
    auto* lv = down_->ptr<VaeLevel>(i).get();
    for (const auto& block : *lv->block) h = block->as<VaeResnetBlockImpl>()->forward(h);
    // CompVis pads right and bottom only, then a stride-2 conv without padding.
    if (lv->resample) h = lv->resample(F::pad(h, F::PadFuncOptions({0, 1, 0, 1})));
    record("down_blocks." + std::to_string(i), h);
  }
  h = mid_(h);
  record("mid_block", h);
  h = norm_out_(h);
  record("conv_norm_out", h);
  h = conv_out_(torch::silu(h));
  record("conv_out", h);
  return h;
}

VaeDecoderImpl::VaeDecoderImpl(const VaeConfig& c) {
  const auto& chans = c.block_out_channels;
  const size_t levels = chans.size();
  int64_t ch = chans.back();
  conv_in_ = register_module("conv_in", conv(c.latent_channels, ch, 3, 1, 1));
  mid_ = register_module("mid", VaeMidBlock(ch, c.norm_groups));
  // CompVis builds the levels from the lowest resolution down but stores them as up.<level>.
  std::vector<std::shared_ptr<VaeLevel>> built(levels);
  for (size_t level = levels; level-- > 0;) {
    auto lv = std::make_shared<VaeLevel>();
    lv->down = false;
    lv->block = lv->register_module("block", nn::ModuleList());
    for (int64_t r = 0; r <= c.layers_per_block; ++r) {
      lv->block->push_back(VaeResnetBlock(ch, chans[level], c.norm_groups));
      ch = chans[level];
    }
    if (level != 0) {
      auto holder = lv->register_module("upsample", std::make_shared<Holder>());
      lv->resample = holder->register_module("conv", conv(ch, ch, 3, 1, 1));
    }
    built[level] = lv;
  }
  up_ = register_module("up", nn::ModuleList());
  for (auto& lv : built) up_->push_back(lv);
  norm_out_ = register_module("norm_out", group_norm(c.norm_groups, ch, kVaeNormEps));
  conv_out_ = register_module("conv_out", conv(ch, c.out_channels, 3, 1, 1));
}

torch::Tensor VaeDecoderImpl::forward(const torch::Tensor& z, ActivationTrace* trace) {
  auto record = [&](const std::string& name, const torch::Tensor& v) {
    if (trace) (*trace)["decoder." + name] = v;
  };
  auto h = conv_in_(z);
  record("conv_in", h);
  h = mid_(h);
  record("mid_block", h);
  const size_t levels = up_->size();
  for (size_t k = 0; k < levels; ++k) {
    auto* lv = up_->ptr<VaeLevel>(levels - 1 - k).get();  // diffusers' up_blocks.k
    for (const auto& block : *lv->block) h = block->as<VaeResnetBlockImpl>()->forward(h);
    if (lv->resample) {
      h = F::interpolate(h, F::InterpolateFuncOptions()
                                .scale_factor(std::vector<double>{2.0, 2.0})
                                .mode(torch::kNearest));
      h = lv->resample(h);
    }
    record("up_blocks." + std::to_string(k), h);
  }
  h = norm_out_(h);
  record("conv_norm_out", h);
  return conv_out_(torch::silu(h));
}

AutoencoderKLImpl::AutoencoderKLImpl(const VaeConfig& config) : config_(config) {
  config_.validate();
  encoder_ = register_module("encoder", VaeEncoder(config_));
  decoder_ = register_module("decoder", VaeDecoder(config_));
  const int64_t zc = config_.latent_channels;
  quant_conv_ = register_module("quant_conv", conv(2 * zc, 2 * zc, 1));
  post_quant_conv_ = register_module("post_quant_conv", conv(zc, zc, 1));
}

Posterior AutoencoderKLImpl::encode(const torch::Tensor& image, ActivationTrace* trace) {
  if (image.dim() != 4 || image.size(1) != config_.in_channels)
    throw Error("vae: images must be [batch, " + std::to_string(config_.in_channels) +
                ", H, W], got " + c10::str(image.sizes()));
  const int64_t f = config_.downsampling_factor();
  if (image.size(2) % f != 0 || image.size(3) % f != 0)
    throw Error("vae: image size " + std::to_string(image.size(2)) + "x" +
                std::to_string(image.size(3)) + " is not a multiple of the down-sampling factor " +
                std::to_string(f));
  auto moments = quant_conv_(encoder_(image, trace));
  if (trace) (*trace)["quant_conv"] = moments;
  auto parts = moments.chunk(2, 1);
  return {parts[0], torch::clamp(parts[1], -30.0, 20.0)};
}

torch::Tensor AutoencoderKLImpl::decode(const torch::Tensor& latent, ActivationTrace* trace) {
  if (latent.dim() != 4 || latent.size(1) != config_.latent_channels)
    throw Error("vae: latents must be [batch, " + std::to_string(config_.latent_channels) +
                ", h, w], got " + c10::str(latent.sizes()));
  auto z = post_quant_conv_(latent);
  if (trace) (*trace)["post_quant_conv"] = z;
  return decoder_(z, trace);
}

}  // namespace p2l::model
