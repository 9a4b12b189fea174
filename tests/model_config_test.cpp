// Configurations: SD v1's full-size parameter counts, config.json round trips, bad configs.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "p2l/error.h"
#include "p2l/model/stable_diffusion.h"

namespace p2l::model {
namespace {

// Parameter counts of SD v1.x (v1-4 / v1-5), as reported by diffusers / transformers.
constexpr int64_t kSdV1TextEncoderParams = 123'060'480;
constexpr int64_t kSdV1UNetParams = 859'520'964;
constexpr int64_t kSdV1VaeParams = 83'653'863;

TEST(ModelConfig, SdV1ParameterCounts) {
  torch::NoGradGuard no_grad;
  EXPECT_EQ(parameter_count(*ClipTextModel(ClipTextConfig::sd_v1())), kSdV1TextEncoderParams);
  EXPECT_EQ(parameter_count(*AutoencoderKL(VaeConfig::sd_v1())), kSdV1VaeParams);
  EXPECT_EQ(parameter_count(*UNet(UNetConfig::sd_v1())), kSdV1UNetParams);
}

TEST(ModelConfig, JsonRoundTrip) {
  auto unet = UNetConfig::sd_v1();
  unet.block_out_channels = {32, 64};
  unet.attention_levels = {false, true};
  unet.num_heads = 4;
  EXPECT_EQ(UNetConfig::from_json(unet.to_json()).to_json(), unet.to_json());
  auto vae = VaeConfig::sd_v1();
  vae.block_out_channels = {32, 64, 64};
  EXPECT_EQ(VaeConfig::from_json(vae.to_json()).to_json(), vae.to_json());
  auto text = ClipTextConfig::sd_v1();
  text.hidden_size = 64;
  text.num_heads = 4;
  EXPECT_EQ(ClipTextConfig::from_json(text.to_json()).to_json(), text.to_json());
}

TEST(ModelConfig, RejectsInconsistentConfigs) {
  auto unet = UNetConfig::sd_v1().to_json();
  unet["attention_head_dim"] = 7;  // 320 channels do not split into 7 heads
  EXPECT_THROW(UNetConfig::from_json(unet), Error);
  auto text = ClipTextConfig::sd_v1().to_json();
  text["num_attention_heads"] = 5;
  EXPECT_THROW(ClipTextConfig::from_json(text), Error);
  auto vae = VaeConfig::sd_v1().to_json();
  vae["norm_num_groups"] = 48;
  EXPECT_THROW(VaeConfig::from_json(vae), Error);
  auto unet2 = UNetConfig::sd_v1().to_json();
  unet2["down_block_types"][0] = "SimpleCrossAttnDownBlock2D";
  EXPECT_THROW(UNetConfig::from_json(unet2), Error);
}

TEST(ModelConfig, NonSquareLatentsRunThroughUNetAndVae) {
  torch::NoGradGuard no_grad;
  auto unet = UNetConfig::sd_v1();
  unet.block_out_channels = {32, 64, 64};
  unet.attention_levels = {true, true, false};
  unet.context_dim = 16;
  UNet net(unet);
  // 5×7 latents: not a multiple of 4, so the up-samplers must follow the skip sizes.
  auto out = net->forward(torch::randn({2, 4, 5, 7}), torch::tensor({10, 500}),
                          torch::randn({2, 3, 16}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 4, 5, 7}));
  auto vae = VaeConfig::sd_v1();
  vae.block_out_channels = {32, 32};
  AutoencoderKL ae(vae);
  auto post = ae->encode(torch::randn({1, 3, 8, 12}));
  EXPECT_EQ(post.mean.sizes(), (std::vector<int64_t>{1, 4, 4, 6}));
  EXPECT_EQ(ae->decode(post.mean).sizes(), (std::vector<int64_t>{1, 3, 8, 12}));
  EXPECT_THROW(ae->encode(torch::randn({1, 3, 9, 12})), Error);
}

TEST(ModelConfig, UNetDropoutActsOnlyInTrainingAndKeepsTheWeightNames) {
  torch::NoGradGuard no_grad;
  auto config = UNetConfig::sd_v1();
  config.block_out_channels = {32, 64};
  config.attention_levels = {true, false};
  config.context_dim = 16;
  torch::manual_seed(0);
  UNet net(config);
  const auto names_before = net->named_parameters().keys();
  const auto x = torch::randn({2, 4, 8, 8});
  const auto t = torch::tensor({10, 500});
  const auto context = torch::randn({2, 3, 16});
  net->eval();
  const auto reference = net->forward(x, t, context);
  // p = 0 (the default) in training mode: the same numbers.
  net->train();
  EXPECT_TRUE(torch::equal(net->forward(x, t, context), reference));
  net->set_dropout(0.5);
  const auto dropped = net->forward(x, t, context);
  EXPECT_GT((dropped - reference).abs().max().item<double>(), 1e-3);
  net->eval();
  EXPECT_TRUE(torch::equal(net->forward(x, t, context), reference));
  EXPECT_EQ(net->named_parameters().keys(), names_before);
  EXPECT_ANY_THROW(net->set_dropout(1.0));
}

}  // namespace
}  // namespace p2l::model
