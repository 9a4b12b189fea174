#include "p2l/model/flops.h"

#include <ATen/record_function.h>

#include <atomic>
#include <cstdio>
#include <string_view>
#include <vector>

#include "p2l/error.h"

namespace p2l::model {

int64_t conv2d_macs(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t out_height,
                    int64_t out_width) {
  return in_channels * out_channels * kernel * kernel * out_height * out_width;
}

int64_t linear_macs(int64_t in_features, int64_t out_features, int64_t rows) {
  return in_features * out_features * rows;
}

MacCount attention_macs(int64_t query_dim, int64_t key_dim, int64_t inner_dim, int64_t queries,
                        int64_t keys) {
  MacCount m;
  m.weights = linear_macs(query_dim, inner_dim, queries)     // to_q
              + 2 * linear_macs(key_dim, inner_dim, keys)    // to_k, to_v
              + linear_macs(inner_dim, query_dim, queries);  // to_out
  // Per head: (queries × head) · (head × keys), then (queries × keys) · (keys × head); summed
  // over the heads the head size adds up to inner_dim.
  m.attention = 2 * queries * keys * inner_dim;
  return m;
}

namespace {

// Spatial size of a stride-2 3×3 convolution's output: the UNet pads 1 on every side, the VAE
// encoder pads right and bottom only (CompVis), both give ⌊(n − 1) / 2⌋ + 1 for these sizes.
int64_t halved(int64_t n, int64_t total_padding) { return (n + total_padding - 3) / 2 + 1; }

struct UNetResBlock {
  int64_t in, out, emb_dim;
  MacCount at(int64_t h, int64_t w) const {
    MacCount m;
    m.weights = conv2d_macs(in, out, 3, h, w) + conv2d_macs(out, out, 3, h, w) +
                linear_macs(emb_dim, out, 1) + (in != out ? conv2d_macs(in, out, 1, h, w) : 0);
    return m;
  }
};

// SD's spatial transformer on `channels` at h × w: proj_in, `depth` blocks of self-attention,
// cross-attention over the text and a GEGLU feed-forward (dim → 2·4·dim, 4·dim → dim), proj_out.
MacCount spatial_transformer_macs(const UNetConfig& c, int64_t channels, int64_t h, int64_t w,
                                  int64_t text_tokens) {
  const int64_t heads = c.heads_for(channels);
  const int64_t inner = heads * (channels / heads);
  const int64_t n = h * w;
  MacCount m;
  m.weights += 2 * linear_macs(channels, inner, n);  // proj_in, proj_out (1×1 conv or linear)
  for (int64_t d = 0; d < c.transformer_depth; ++d) {
    m += attention_macs(inner, inner, inner, n, n);
    m += attention_macs(inner, c.context_dim, inner, n, text_tokens);
    m.weights += linear_macs(inner, 2 * 4 * inner, n) + linear_macs(4 * inner, inner, n);
  }
  return m;
}

struct Feature {
  int64_t channels, h, w;
};

}  // namespace

MacCount unet_macs(const UNetConfig& c, int64_t latent_height, int64_t latent_width,
                   int64_t text_tokens) {
  c.validate();
  const auto& chans = c.block_out_channels;
  const int64_t emb = c.time_embed_dim();
  MacCount m;
  m.weights += linear_macs(chans[0], emb, 1) + linear_macs(emb, emb, 1);  // time_embed
  int64_t h = latent_height, w = latent_width, ch = chans[0];
  m.weights += conv2d_macs(c.in_channels, ch, 3, h, w);  // conv_in
  std::vector<Feature> skips{{ch, h, w}};
  const size_t levels = chans.size();
  for (size_t level = 0; level < levels; ++level) {
    for (int64_t r = 0; r < c.layers_per_block; ++r) {
      m += UNetResBlock{ch, chans[level], emb}.at(h, w);
      ch = chans[level];
      if (c.attention_levels[level]) m += spatial_transformer_macs(c, ch, h, w, text_tokens);
      skips.push_back({ch, h, w});
    }
    if (level + 1 != levels) {
      h = halved(h, 2), w = halved(w, 2);
      m.weights += conv2d_macs(ch, ch, 3, h, w);  // Downsample
      skips.push_back({ch, h, w});
    }
  }
  m += UNetResBlock{ch, ch, emb}.at(h, w);
  m += spatial_transformer_macs(c, ch, h, w, text_tokens);
  m += UNetResBlock{ch, ch, emb}.at(h, w);
  for (size_t level = levels; level-- > 0;) {
    for (int64_t r = 0; r <= c.layers_per_block; ++r) {
      const Feature skip = skips.back();
      skips.pop_back();
      m += UNetResBlock{ch + skip.channels, chans[level], emb}.at(h, w);
      ch = chans[level];
      if (c.attention_levels[level]) m += spatial_transformer_macs(c, ch, h, w, text_tokens);
      if (level > 0 && r == c.layers_per_block) {
        // Nearest up-sampling to the next skip's size, then a 3×3 convolution there.
        h = skips.back().h, w = skips.back().w;
        m.weights += conv2d_macs(ch, ch, 3, h, w);
      }
    }
  }
  m.weights += conv2d_macs(ch, c.out_channels, 3, h, w);  // out
  return m;
}

namespace {

MacCount vae_resnet_macs(int64_t in, int64_t out, int64_t h, int64_t w) {
  MacCount m;
  m.weights = conv2d_macs(in, out, 3, h, w) + conv2d_macs(out, out, 3, h, w) +
              (in != out ? conv2d_macs(in, out, 1, h, w) : 0);
  return m;
}

// Resnet, single-head self-attention over all positions (q, k, v, proj_out as 1×1
// convolutions), resnet.
MacCount vae_mid_macs(int64_t ch, int64_t h, int64_t w) {
  MacCount m = vae_resnet_macs(ch, ch, h, w);
  m += attention_macs(ch, ch, ch, h * w, h * w);
  m += vae_resnet_macs(ch, ch, h, w);
  return m;
}

}  // namespace

MacCount vae_encoder_macs(const VaeConfig& c, int64_t image_height, int64_t image_width) {
  c.validate();
  const auto& chans = c.block_out_channels;
  int64_t h = image_height, w = image_width, ch = chans[0];
  MacCount m;
  m.weights += conv2d_macs(c.in_channels, ch, 3, h, w);  // conv_in
  for (size_t level = 0; level < chans.size(); ++level) {
    for (int64_t r = 0; r < c.layers_per_block; ++r) {
      m += vae_resnet_macs(ch, chans[level], h, w);
      ch = chans[level];
    }
    if (level + 1 != chans.size()) {
      h = halved(h, 1), w = halved(w, 1);
      m.weights += conv2d_macs(ch, ch, 3, h, w);  // downsample (padded right and bottom)
    }
  }
  m += vae_mid_macs(ch, h, w);
  m.weights += conv2d_macs(ch, 2 * c.latent_channels, 3, h, w);                     // conv_out
  m.weights += conv2d_macs(2 * c.latent_channels, 2 * c.latent_channels, 1, h, w);  // quant_conv
  return m;
}

MacCount vae_decoder_macs(const VaeConfig& c, int64_t latent_height, int64_t latent_width) {
  c.validate();
  const auto& chans = c.block_out_channels;
  int64_t h = latent_height, w = latent_width, ch = chans.back();
  MacCount m;
  m.weights += conv2d_macs(c.latent_channels, c.latent_channels, 1, h, w);  // post_quant_conv
  m.weights += conv2d_macs(c.latent_channels, ch, 3, h, w);                 // conv_in
  m += vae_mid_macs(ch, h, w);
  for (size_t level = chans.size(); level-- > 0;) {
    for (int64_t r = 0; r <= c.layers_per_block; ++r) {
      m += vae_resnet_macs(ch, chans[level], h, w);
      ch = chans[level];
    }
    if (level != 0) {
      h *= 2, w *= 2;
      m.weights += conv2d_macs(ch, ch, 3, h, w);  // upsample: nearest ×2, then 3×3
    }
  }
  m.weights += conv2d_macs(ch, c.out_channels, 3, h, w);  // conv_out
  return m;
}

MacCount clip_text_macs(const ClipTextConfig& c, int64_t tokens) {
  c.validate();
  const int64_t d = c.hidden_size;
  MacCount layer = attention_macs(d, d, d, tokens, tokens);
  layer.weights +=
      linear_macs(d, c.intermediate_size, tokens) + linear_macs(c.intermediate_size, d, tokens);
  MacCount m;
  // The causal mask hides half of QKᵀ, but the products are computed in full.
  for (int64_t i = 0; i < c.num_layers; ++i) m += layer;
  return m;
}

// --- MacTracer ---------------------------------------------------------------------------------
//
// A global RecordFunction callback sees every operator LibTorch dispatches, with its arguments.
// Only the outermost of the counted operators is counted: an implementation may dispatch a
// matrix product of its own (a batched product per batch item, a convolution as a product).

namespace {

std::atomic<int64_t> g_weight_macs{0}, g_attention_macs{0};
std::atomic<bool> g_tracing{false};
thread_local int t_counted_depth = 0;

enum class Counted { kNone, kConvolution, kMm, kAddmm, kBmm, kFusedAttention };

Counted classify(std::string_view name) {
  if (name == "aten::convolution") return Counted::kConvolution;
  if (name == "aten::mm") return Counted::kMm;
  if (name == "aten::addmm") return Counted::kAddmm;
  if (name == "aten::bmm") return Counted::kBmm;
  // LibTorch ≥ 2.1's attention (model/attention.h); its kernels are counted through it.
  if (name == "aten::scaled_dot_product_attention") return Counted::kFusedAttention;
  return Counted::kNone;
}

int64_t convolution_macs(c10::ArrayRef<const c10::IValue> in) {
  // aten::convolution(input, weight, bias, stride, padding, dilation, transposed,
  //                   output_padding, groups)
  const auto x = in[0].toTensor().sizes();
  const auto weight = in[1].toTensor().sizes();
  if (in[6].toBool()) throw Error("MacTracer: transposed convolutions are not counted");
  const auto stride = in[3].toIntVector(), padding = in[4].toIntVector(),
             dilation = in[5].toIntVector();
  int64_t outputs = x[0] * weight[0];
  int64_t per_output = weight[1];  // in_channels / groups
  for (size_t d = 0; d + 2 < weight.size(); ++d) {
    const int64_t k = weight[d + 2];
    outputs *= (x[d + 2] + 2 * padding[d] - dilation[d] * (k - 1) - 1) / stride[d] + 1;
    per_output *= k;
  }
  return outputs * per_output;
}

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  const Counted kind = classify(fn.name());
  if (kind == Counted::kNone || !g_tracing.load()) return nullptr;
  if (t_counted_depth++ > 0) return nullptr;
  const auto in = fn.inputs();
  auto sizes = [&](size_t i) { return in[i].toTensor().sizes(); };
  switch (kind) {
    case Counted::kConvolution:
      g_weight_macs += convolution_macs(in);
      break;
    case Counted::kMm:
      g_weight_macs += sizes(0)[0] * sizes(0)[1] * sizes(1)[1];
      break;
    case Counted::kAddmm:
      g_weight_macs += sizes(1)[0] * sizes(1)[1] * sizes(2)[1];
      break;
    case Counted::kBmm:
      g_attention_macs += sizes(0)[0] * sizes(0)[1] * sizes(0)[2] * sizes(1)[2];
      break;
    case Counted::kFusedAttention: {
      // q [..., Lq, d], k [..., Lk, d], v [..., Lk, dv]: q·kᵀ and softmax(·)·v.
      const auto q = sizes(0), k = sizes(1), v = sizes(2);
      int64_t rows = 1;
      for (size_t d = 0; d + 1 < q.size(); ++d) rows *= q[d];  // batch × heads × Lq
      const int64_t keys = k[k.size() - 2];
      g_attention_macs += rows * keys * (q.back() + v.back());
      break;
    }
    case Counted::kNone:
      break;
  }
  return nullptr;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext*) {
  if (t_counted_depth > 0 && classify(fn.name()) != Counted::kNone) --t_counted_depth;
}

at::CallbackHandle g_handle = 0;

}  // namespace

MacTracer::MacTracer() {
  if (g_tracing.exchange(true)) throw Error("MacTracer: one tracer at a time");
  g_weight_macs = 0;
  g_attention_macs = 0;
  g_handle = at::addGlobalCallback(at::RecordFunctionCallback(&on_start, &on_end)
                                       .needsInputs(true)
                                       .scopes({at::RecordScope::FUNCTION}));
}

MacTracer::~MacTracer() {
  at::removeCallback(g_handle);
  g_tracing = false;
}

MacCount MacTracer::count() const { return {g_weight_macs.load(), g_attention_macs.load()}; }

std::string format_count(double value) {
  const char* units[] = {"", "k", "M", "G", "T", "P"};
  int u = 0;
  while (value >= 1000 && u < 5) value /= 1000, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g %s", value, units[u]);
  return buf;
}

}  // namespace p2l::model
