#include "p2l/model/unet.h"

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
// GroupNorm eps of the UNet transformers' input norm (CompVis Normalize, diffusers Transformer2D).
constexpr double kTransformerNormEps = 1e-6;

nn::LayerNorm layer_norm(int64_t dim) {
  return nn::LayerNorm(nn::LayerNormOptions({dim}).eps(1e-5));
}
}  // namespace

UNetConfig UNetConfig::sd_v1() { return UNetConfig{}; }

namespace {

constexpr char kUNetConfig[] = "unet config";

UNetConfig unet_config_from_json(const nlohmann::json& j) {
  UNetConfig c;
  c.in_channels = io::json_int(j, "in_channels", c.in_channels, kUNetConfig);
  c.out_channels = io::json_int(j, "out_channels", c.out_channels, kUNetConfig);
  if (j.contains("block_out_channels"))
    c.block_out_channels = io::json_int_list(j["block_out_channels"], kUNetConfig, "block_out_channels");
  c.attention_levels.clear();
  if (j.contains("down_block_types")) {
    for (const auto& type : j["down_block_types"]) {
      const auto name = type.get<std::string>();
      if (name != "CrossAttnDownBlock2D" && name != "DownBlock2D")
        throw Error("unet config: unsupported down block type '" + name + "'");
      c.attention_levels.push_back(name == "CrossAttnDownBlock2D");
    }
  } else {
    c.attention_levels = UNetConfig{}.attention_levels;
  }
  if (j.contains("up_block_types")) {
    // The up path must mirror the down path (as in every SD v1 checkpoint).
    const auto& up = j["up_block_types"];
    for (size_t i = 0; i < up.size() && i < c.attention_levels.size(); ++i) {
      const bool attn = up[i].get<std::string>() == "CrossAttnUpBlock2D";
      if (attn != c.attention_levels[c.attention_levels.size() - 1 - i])
        throw Error("unet config: up_block_types do not mirror down_block_types");
    }
  }
  c.layers_per_block = io::json_int(j, "layers_per_block", c.layers_per_block, kUNetConfig);
  // SD v1 quirk: attention_head_dim holds the number of heads. num_attention_heads, when set,
  // is the newer, correctly named field.
  if (j.contains("num_attention_heads") && !j["num_attention_heads"].is_null())
    c.num_heads = io::json_to_int(j["num_attention_heads"], kUNetConfig, "num_attention_heads");
  else if (j.contains("attention_head_dim") && j["attention_head_dim"].is_number_integer())
    c.num_heads = io::json_to_int(j["attention_head_dim"], kUNetConfig, "attention_head_dim");
  else if (j.contains("attention_head_dim"))
    throw Error("unet config: per-level attention_head_dim lists are not supported");
  c.context_dim = io::json_int(j, "cross_attention_dim", c.context_dim, kUNetConfig);
  if (j.contains("transformer_layers_per_block") && j["transformer_layers_per_block"].is_number())
    c.transformer_depth =
        io::json_to_int(j["transformer_layers_per_block"], kUNetConfig, "transformer_layers_per_block");
  c.use_linear_projection = j.value("use_linear_projection", false);
  c.norm_groups = io::json_int(j, "norm_num_groups", c.norm_groups, kUNetConfig);
  c.norm_eps = j.value("norm_eps", c.norm_eps);
  if (j.contains("sample_size") && j["sample_size"].is_number_integer())
    c.sample_size = io::json_to_int(j["sample_size"], kUNetConfig, "sample_size");
  if (!j.value("flip_sin_to_cos", true) || io::json_int(j, "freq_shift", 0, kUNetConfig) != 0)
    throw Error("unet config: only flip_sin_to_cos=true, freq_shift=0 (SD v1) is supported");
  c.validate();
  return c;
}

}  // namespace

UNetConfig UNetConfig::from_json(const nlohmann::json& j) {
  // A value of the wrong type is nlohmann's type_error; it is a defect of the file like any other.
  try {
    return unet_config_from_json(j);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string(kUNetConfig) + ": " + e.what());
  }
}

nlohmann::json UNetConfig::to_json() const {
  std::vector<std::string> down, up;
  for (bool a : attention_levels) down.push_back(a ? "CrossAttnDownBlock2D" : "DownBlock2D");
  for (auto it = attention_levels.rbegin(); it != attention_levels.rend(); ++it)
    up.push_back(*it ? "CrossAttnUpBlock2D" : "UpBlock2D");
  nlohmann::json j = {{"in_channels", in_channels},
                      {"out_channels", out_channels},
                      {"block_out_channels", block_out_channels},
                      {"down_block_types", down},
                      {"up_block_types", up},
                      {"layers_per_block", layers_per_block},
                      {"attention_head_dim", num_heads},
                      {"cross_attention_dim", context_dim},
                      {"transformer_layers_per_block", transformer_depth},
                      {"use_linear_projection", use_linear_projection},
                      {"norm_num_groups", norm_groups},
                      {"norm_eps", norm_eps},
                      {"sample_size", sample_size},
                      {"flip_sin_to_cos", true},
                      {"freq_shift", 0}};
  if (head_channels > 0) j["head_channels"] = head_channels;
  return j;
}

void UNetConfig::validate() const {
  const auto fail = [](const std::string& m) { throw Error("unet config: " + m); };
  if (block_out_channels.empty()) fail("block_out_channels is empty");
  if (attention_levels.size() != block_out_channels.size())
    fail("one block type per level of block_out_channels is needed");
  if (in_channels <= 0 || out_channels <= 0 || layers_per_block <= 0 || context_dim <= 0 ||
      transformer_depth <= 0 || norm_groups <= 0)
    fail("sizes must be positive");
  // Far above every released SD-family UNet (SD v1: 4 levels up to 1280 channels, 2 layers):
  // a lying config is refused before a module is built.
  const auto at_most = [](int64_t value, int64_t bound, const std::string& name) {
    check_bound(value, bound, "unet config", name);
  };
  at_most(static_cast<int64_t>(block_out_channels.size()), 8, "the number of levels");
  for (auto ch : block_out_channels) at_most(ch, 8192, "block_out_channels");
  at_most(layers_per_block, 16, "layers_per_block");
  at_most(transformer_depth, 32, "transformer_depth");
  at_most(context_dim, 8192, "cross_attention_dim");
  at_most(std::max(in_channels, out_channels), 64, "in/out_channels");
  at_most(sample_size, 1024, "sample_size");
  if (block_out_channels[0] % 2 != 0) fail("block_out_channels[0] must be even");
  if (sample_size <= 0) fail("sample_size must be positive");
  for (auto ch : block_out_channels) {
    if (ch <= 0 || ch % norm_groups != 0)
      fail("channels " + std::to_string(ch) + " not divisible by " +
           std::to_string(norm_groups) + " groups");
    heads_for(ch);
  }
}

int64_t UNetConfig::heads_for(int64_t channels) const {
  const int64_t heads = head_channels > 0 ? channels / head_channels : num_heads;
  if (heads <= 0 || channels % heads != 0)
    throw Error("unet config: " + std::to_string(channels) + " channels do not split into " +
                std::to_string(heads) + " heads");
  return heads;
}

torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim) {
  const int64_t half = dim / 2;
  auto opts = torch::TensorOptions().dtype(torch::kFloat).device(t.device());
  // diffusers' order of operations: exponent = -ln(10000)·i, then / half, then exp.
  auto exponent = torch::arange(0, half, opts) * (-std::log(10000.0));
  auto freqs = torch::exp(exponent / static_cast<double>(half));
  auto args = t.reshape({-1, 1}).to(torch::kFloat) * freqs.unsqueeze(0);
  return torch::cat({torch::cos(args), torch::sin(args)}, -1);
}

ResBlockImpl::ResBlockImpl(int64_t in_ch, int64_t out_ch, int64_t emb_dim, int64_t groups,
                           double eps) {
  in_layers_ = register_module(
      "in_layers", nn::Sequential(group_norm(groups, in_ch, eps), nn::SiLU(),
                                  conv(in_ch, out_ch, 3, 1, 1)));
  emb_layers_ = register_module("emb_layers", nn::Sequential(nn::SiLU(), nn::Linear(emb_dim, out_ch)));
  // Index 2 is CompVis' dropout (no weights, so the conv stays named out_layers.3); p = 0 unless
  // a trainer sets it, and an identity outside training mode.
  out_layers_ = register_module(
      "out_layers", nn::Sequential(group_norm(groups, out_ch, eps), nn::SiLU(),
                                   nn::Dropout(nn::DropoutOptions(0.0)),
                                   conv(out_ch, out_ch, 3, 1, 1)));
  if (in_ch != out_ch) skip_connection_ = register_module("skip_connection", conv(in_ch, out_ch, 1));
}

torch::Tensor ResBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& emb) {
  auto h = in_layers_->forward(x);
  h = h + emb_layers_->forward(emb).unsqueeze(-1).unsqueeze(-1);
  h = out_layers_->forward(h);
  return (skip_connection_ ? skip_connection_(x) : x) + h;
}

CrossAttentionImpl::CrossAttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads,
                                       int64_t head_dim)
    : heads_(heads), head_dim_(head_dim) {
  const int64_t inner = heads * head_dim;
  to_q_ = register_module("to_q", nn::Linear(nn::LinearOptions(query_dim, inner).bias(false)));
  to_k_ = register_module("to_k", nn::Linear(nn::LinearOptions(context_dim, inner).bias(false)));
  to_v_ = register_module("to_v", nn::Linear(nn::LinearOptions(context_dim, inner).bias(false)));
  to_out_ = register_module("to_out", nn::Sequential(nn::Linear(inner, query_dim), nn::Identity()));
}

torch::Tensor CrossAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context) {
  const auto& ctx = context.defined() ? context : x;
  const int64_t b = x.size(0);
  auto split = [&](const torch::Tensor& t) {
    return t.view({b, t.size(1), heads_, head_dim_}).transpose(1, 2);
  };
  auto out = attention(split(to_q_(x)), split(to_k_(ctx)), split(to_v_(ctx)), ScaleAt::kScores)
                 .transpose(1, 2)
                 .reshape({b, x.size(1), heads_ * head_dim_});
  return to_out_->forward(out);
}

GegluImpl::GegluImpl(int64_t dim_in, int64_t dim_out) {
  proj_ = register_module("proj", nn::Linear(dim_in, 2 * dim_out));
}

torch::Tensor GegluImpl::forward(const torch::Tensor& x) {
  auto parts = proj_(x).chunk(2, -1);
  return parts[0] * torch::gelu(parts[1]);
}

BasicTransformerBlockImpl::BasicTransformerBlockImpl(int64_t dim, int64_t heads,
                                                     int64_t head_dim, int64_t context_dim) {
  attn1_ = register_module("attn1", CrossAttention(dim, dim, heads, head_dim));
  // SD's feed-forward `ff.net`: GEGLU to 4·dim, (dropout), linear back.
  auto ff = register_module("ff", std::make_shared<Holder>());
  ff_ = ff->register_module(
      "net", nn::Sequential(Geglu(dim, 4 * dim), nn::Identity(), nn::Linear(4 * dim, dim)));
  attn2_ = register_module("attn2", CrossAttention(dim, context_dim, heads, head_dim));
  norm1_ = register_module("norm1", layer_norm(dim));
  norm2_ = register_module("norm2", layer_norm(dim));
  norm3_ = register_module("norm3", layer_norm(dim));
}

torch::Tensor BasicTransformerBlockImpl::forward(const torch::Tensor& x,
                                                 const torch::Tensor& context) {
  auto h = x + attn1_(norm1_(x));
  h = h + attn2_(norm2_(h), context);
  return h + ff_->forward(norm3_(h));
}

SpatialTransformerImpl::SpatialTransformerImpl(int64_t channels, int64_t heads, int64_t head_dim,
                                               int64_t depth, int64_t context_dim,
                                               bool linear_projection, int64_t groups)
    : linear_projection_(linear_projection) {
  const int64_t inner = heads * head_dim;
  norm_ = register_module("norm", group_norm(groups, channels, kTransformerNormEps));
  if (linear_projection_) {
    proj_in_linear_ = register_module("proj_in", nn::Linear(channels, inner));
  } else {
    proj_in_conv_ = register_module("proj_in", conv(channels, inner, 1));
  }
  transformer_blocks_ = register_module("transformer_blocks", nn::ModuleList());
  for (int64_t d = 0; d < depth; ++d)
    transformer_blocks_->push_back(BasicTransformerBlock(inner, heads, head_dim, context_dim));
  if (linear_projection_) {
    proj_out_linear_ = register_module("proj_out", nn::Linear(inner, channels));
  } else {
    proj_out_conv_ = register_module("proj_out", conv(inner, channels, 1));
  }
}

torch::Tensor SpatialTransformerImpl::forward(const torch::Tensor& x,
                                              const torch::Tensor& context) {
  const auto b = x.size(0), h = x.size(2), w = x.size(3);
  auto to_tokens = [&](const torch::Tensor& t) {
    return t.permute({0, 2, 3, 1}).reshape({b, h * w, t.size(1)});
  };
  auto to_image = [&](const torch::Tensor& t) {
    return t.reshape({b, h, w, t.size(2)}).permute({0, 3, 1, 2}).contiguous();
  };
  auto hs = norm_(x);
  hs = linear_projection_ ? proj_in_linear_(to_tokens(hs)) : to_tokens(proj_in_conv_(hs));
  for (const auto& block : *transformer_blocks_)
    hs = block->as<BasicTransformerBlockImpl>()->forward(hs, context);
  hs = linear_projection_ ? to_image(proj_out_linear_(hs)) : proj_out_conv_(to_image(hs));
  return hs + x;
}

DownsampleImpl::DownsampleImpl(int64_t channels) {
  op_ = register_module("op", conv(channels, channels, 3, 2, 1));
}

torch::Tensor DownsampleImpl::forward(const torch::Tensor& x) { return op_(x); }

UpsampleImpl::UpsampleImpl(int64_t channels) {
  conv_ = register_module("conv", conv(channels, channels, 3, 1, 1));
}

torch::Tensor UpsampleImpl::forward(const torch::Tensor& x, at::IntArrayRef size) {
  std::vector<int64_t> target = size.empty() ? std::vector<int64_t>{2 * x.size(2), 2 * x.size(3)}
                                             : size.vec();
  auto up = F::interpolate(
      x, F::InterpolateFuncOptions().size(target).mode(torch::kNearest));
  return conv_(up);
}

UNetImpl::UNetImpl(const UNetConfig& config) : config_(config) {
  config_.validate();
  const auto& chans = config_.block_out_channels;
  const int64_t emb_dim = config_.time_embed_dim();
  const int64_t groups = config_.norm_groups;
  const double eps = config_.norm_eps;
  auto transformer = [&](int64_t ch) {
    const int64_t heads = config_.heads_for(ch);
    return SpatialTransformer(ch, heads, ch / heads, config_.transformer_depth,
                              config_.context_dim, config_.use_linear_projection, groups);
  };

  time_embed_ = register_module(
      "time_embed", nn::Sequential(nn::Linear(chans[0], emb_dim), nn::SiLU(),
                                   nn::Linear(emb_dim, emb_dim)));

  // The CompVis construction: a list of blocks, each a list of layers, so that the names are
  // input_blocks.<block>.<layer>.
  input_blocks_ = register_module("input_blocks", nn::ModuleList());
  input_blocks_->push_back(nn::ModuleList(conv(config_.in_channels, chans[0], 3, 1, 1)));
  std::vector<int64_t> skip_channels{chans[0]};
  int64_t ch = chans[0];
  const size_t levels = chans.size();
  for (size_t level = 0; level < levels; ++level) {
    for (int64_t r = 0; r < config_.layers_per_block; ++r) {
      nn::ModuleList block(ResBlock(ch, chans[level], emb_dim, groups, eps));
      ch = chans[level];
      if (config_.attention_levels[level]) block->push_back(transformer(ch));
      input_blocks_->push_back(block);
      skip_channels.push_back(ch);
    }
    if (level + 1 != levels) {
      input_blocks_->push_back(nn::ModuleList(Downsample(ch)));
      skip_channels.push_back(ch);
    }
  }

  middle_block_ = register_module(
      "middle_block", nn::ModuleList(ResBlock(ch, ch, emb_dim, groups, eps), transformer(ch),
                                     ResBlock(ch, ch, emb_dim, groups, eps)));

  output_blocks_ = register_module("output_blocks", nn::ModuleList());
  for (size_t level = levels; level-- > 0;) {
    for (int64_t r = 0; r <= config_.layers_per_block; ++r) {
      const int64_t skip = skip_channels.back();
      skip_channels.pop_back();
      nn::ModuleList block(ResBlock(ch + skip, chans[level], emb_dim, groups, eps));
      ch = chans[level];
      if (config_.attention_levels[level]) block->push_back(transformer(ch));
      if (level > 0 && r == config_.layers_per_block) block->push_back(Upsample(ch));
      output_blocks_->push_back(block);
    }
  }

  out_ = register_module("out", nn::Sequential(group_norm(groups, ch, eps), nn::SiLU(),
                                               conv(ch, config_.out_channels, 3, 1, 1)));
}

torch::Tensor UNetImpl::run_block(nn::ModuleListImpl& block, torch::Tensor h,
                                  const torch::Tensor& emb, const torch::Tensor& context,
                                  at::IntArrayRef upsample_size) {
  for (const auto& layer : block) {
    if (auto* res = layer->as<ResBlockImpl>()) {
      h = res->forward(h, emb);
    } else if (auto* st = layer->as<SpatialTransformerImpl>()) {
      h = st->forward(h, context);
    } else if (auto* down = layer->as<DownsampleImpl>()) {
      h = down->forward(h);
    } else if (auto* up = layer->as<UpsampleImpl>()) {
      h = up->forward(h, upsample_size);
    } else if (auto* c = layer->as<nn::Conv2dImpl>()) {
      h = c->forward(h);
    } else {
      throw Error("unet: unexpected layer " + layer->name());
    }
  }
  return h;
}

torch::Tensor UNetImpl::forward(const torch::Tensor& x, const torch::Tensor& t,
                                const torch::Tensor& context, ActivationTrace* trace) {
  if (x.dim() != 4 || x.size(1) != config_.in_channels)
    throw Error("unet: latents must be [batch, " + std::to_string(config_.in_channels) +
                ", h, w], got " + c10::str(x.sizes()));
  if (context.dim() != 3 || context.size(2) != config_.context_dim)
    throw Error("unet: text states must be [batch, tokens, " +
                std::to_string(config_.context_dim) + "], got " + c10::str(context.sizes()));
  if (context.size(0) != x.size(0))
    throw Error("unet: batch of latents (" + std::to_string(x.size(0)) +
                ") and of text states (" + std::to_string(context.size(0)) + ") differ");
  const int64_t b = x.size(0);
  auto steps = t.to(x.device()).reshape({-1});
  if (steps.size(0) == 1) steps = steps.expand({b});
  if (steps.size(0) != b) throw Error("unet: need one timestep or one per batch item");
  auto record = [&](const std::string& name, const torch::Tensor& v) {
    if (trace) (*trace)[name] = v;
  };

  auto t_emb = timestep_embedding(steps, config_.block_out_channels[0]).to(x.scalar_type());
  record("time_proj", t_emb);
  auto emb = time_embed_->forward(t_emb);
  record("time_embedding", emb);

  std::vector<torch::Tensor> skips;
  torch::Tensor h = x;
  const int64_t per_level = config_.layers_per_block + 1;
  for (size_t i = 0; i < input_blocks_->size(); ++i) {
    h = run_block(*input_blocks_->ptr<nn::ModuleListImpl>(i), h, emb, context);
    skips.push_back(h);
    if (i == 0) record("conv_in", h);
    // diffusers' down_blocks.k ends after its downsampler (or last resnet on the last level).
    if (i > 0 && (static_cast<int64_t>(i) % per_level == 0 || i + 1 == input_blocks_->size()))
      record("down_blocks." + std::to_string((i - 1) / per_level), h);
  }
  for (const auto& layer : *middle_block_) {
    if (auto* res = layer->as<ResBlockImpl>()) h = res->forward(h, emb);
    else h = layer->as<SpatialTransformerImpl>()->forward(h, context);
  }
  record("mid_block", h);
  for (size_t i = 0; i < output_blocks_->size(); ++i) {
    h = torch::cat({h, skips.back()}, 1);
    skips.pop_back();
    // The up-sampler targets the size of the skip it will meet next (diffusers' upsample_size),
    // so odd latent sizes work.
    std::vector<int64_t> size;
    if (!skips.empty()) size = {skips.back().size(2), skips.back().size(3)};
    h = run_block(*output_blocks_->ptr<nn::ModuleListImpl>(i), h, emb, context, size);
    if ((i + 1) % per_level == 0) record("up_blocks." + std::to_string(i / per_level), h);
  }
  auto normed = out_[0]->as<nn::GroupNormImpl>()->forward(h);
  record("conv_norm_out", normed);
  return out_[2]->as<nn::Conv2dImpl>()->forward(torch::silu(normed));
}

void UNetImpl::set_dropout(double p) {
  TORCH_CHECK(p >= 0 && p < 1, "UNet dropout must be in [0, 1), got ", p);
  for (const auto& m : modules(/*include_self=*/false))
    if (auto* dropout = m->as<nn::DropoutImpl>()) dropout->options.p(p);
}

}  // namespace p2l::model
