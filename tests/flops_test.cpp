// The analytic multiply-add counts (model/flops.h) against hand counts of single layers, and
// against the MacTracer's count of what LibTorch actually dispatches in a forward pass of the
// shipped model's networks and of SD v1-shaped networks (narrowed so the test stays fast).
#include <gtest/gtest.h>

#include <filesystem>

#include "p2l/error.h"
#include "p2l/model/checkpoint.h"
#include "p2l/model/flops.h"
#include "shipped_model.h"

namespace p2l::test {
namespace {

namespace fs = std::filesystem;
using model::MacCount;
using model::MacTracer;

TEST(Flops, SingleConvolutionByHand) {
  // 3 → 8 channels, 3×3, 16×16 output: 3·8·9 MACs per output pixel.
  EXPECT_EQ(model::conv2d_macs(3, 8, 3, 16, 16), 3 * 8 * 9 * 256);
  torch::NoGradGuard no_grad;
  torch::nn::Conv2d same(torch::nn::Conv2dOptions(3, 8, 3).padding(1));
  torch::nn::Conv2d strided(torch::nn::Conv2dOptions(4, 4, 3).stride(2).padding(1));
  MacTracer tracer;
  same(torch::randn({1, 3, 16, 16}));
  EXPECT_EQ(tracer.count(), (MacCount{3 * 8 * 9 * 256, 0}));
  strided(torch::randn({1, 4, 15, 15}));  // ⌊(15 + 2 − 3) / 2⌋ + 1 = 8
  EXPECT_EQ(tracer.count().weights, 3 * 8 * 9 * 256 + 4 * 4 * 9 * 8 * 8);
}

TEST(Flops, SingleAttentionBlockByHand) {
  // 10 queries of dim 8 over 5 keys of dim 6, 2 heads of 4.
  const MacCount hand{/*weights=*/10 * 8 * 8 + 2 * (5 * 6 * 8) + 10 * 8 * 8,
                      /*attention=*/2 * (2 * 10 * 4 * 5)};  // QKᵀ and AV, per head
  EXPECT_EQ(model::attention_macs(8, 6, 8, 10, 5), hand);
  torch::NoGradGuard no_grad;
  model::CrossAttention attention(8, 6, 2, 4);
  MacTracer tracer;
  attention(torch::randn({1, 10, 8}), torch::randn({1, 5, 6}));
  EXPECT_EQ(tracer.count(), hand);
}

TEST(Flops, ConventionsForBackward) {
  const MacCount m{100, 10};
  EXPECT_DOUBLE_EQ(m.forward_flops(), 220);
  EXPECT_DOUBLE_EQ(m.input_backward_flops(), 240);  // weights once, attention twice
  EXPECT_DOUBLE_EQ(m.training_backward_flops(), 440);
}

TEST(Flops, OneTracerAtATime) {
  MacTracer tracer;
  EXPECT_THROW(MacTracer{}, Error);
}

// Analytic count of each network of a configuration against the traced forward pass.
void expect_counts_match(const model::ModelConfig& config, int64_t latent_h, int64_t latent_w) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const int64_t f = config.vae.downsampling_factor();
  const int64_t tokens = config.text.max_positions;
  {
    model::UNet unet(config.unet);
    auto z = torch::randn({1, config.unet.in_channels, latent_h, latent_w});
    auto text = torch::randn({1, tokens, config.unet.context_dim});
    MacTracer tracer;
    unet->forward(z, torch::full({1}, 500, torch::kLong), text);
    EXPECT_EQ(tracer.count(), model::unet_macs(config.unet, latent_h, latent_w, tokens))
        << "UNet at " << latent_h << "x" << latent_w;
  }
  {
    model::AutoencoderKL vae(config.vae);
    auto x = torch::randn({1, config.vae.in_channels, latent_h * f, latent_w * f});
    auto z = torch::randn({1, config.vae.latent_channels, latent_h, latent_w});
    {
      MacTracer tracer;
      vae->encode_mean(x);
      EXPECT_EQ(tracer.count(), model::vae_encoder_macs(config.vae, latent_h * f, latent_w * f));
    }
    MacTracer tracer;
    vae->decode_scaled(z);
    EXPECT_EQ(tracer.count(), model::vae_decoder_macs(config.vae, latent_h, latent_w));
  }
  model::ClipTextModel text(config.text);
  MacTracer tracer;
  text->forward(torch::randint(config.text.vocab_size, {1, tokens}, torch::kLong));
  EXPECT_EQ(tracer.count(), model::clip_text_macs(config.text, tokens));
}

TEST(Flops, ShippedModelMatchesTracedForward) {
  const auto config = model::load_stable_diffusion(kModel.string()).config;
  expect_counts_match(config, config.unet.sample_size, config.unet.sample_size);
}

TEST(Flops, SdV1ShapedNetworksMatchTracedForward) {
  // SD v1's topology (4 levels, 2 layers per block, attention on the first three, 8 heads,
  // 12-layer text encoder) with narrow channels, at an odd latent size (10 → 5 → 3 → 2) that
  // exercises the down- and up-sampling sizes.
  auto config = model::ModelConfig::sd_v1();
  config.unet.block_out_channels = {32, 64, 128, 128};
  config.unet.context_dim = 48;
  config.vae.block_out_channels = {32, 32, 64, 64};
  config.text.hidden_size = 48;
  config.text.intermediate_size = 192;
  config.text.vocab_size = 100;
  expect_counts_match(config, 10, 6);
}

TEST(Flops, SdV1At512) {
  // SD v1 at 512² (64² latents): 0.40 T multiply-adds (0.80 TFLOPs) per UNet evaluation, the
  // figure usually quoted for it, of which 16 % are attention products; the decoder at 512²
  // costs 3.1× the UNet. Exact values, so that a change to the counting shows up here.
  const auto c = model::ModelConfig::sd_v1();
  EXPECT_EQ(model::unet_macs(c.unet, 64, 64), (MacCount{338610585600, 63026135040}));
  EXPECT_EQ(model::vae_decoder_macs(c.vae, 64, 64), (MacCount{1240079597568, 17179869184}));
}

}  // namespace
}  // namespace p2l::test
