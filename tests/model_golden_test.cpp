// The SD v1 components against the Hugging Face reference tensors, for both checkpoint layouts
// of the same tiny model: outputs, intermediate activations and gradients.
#include <gtest/gtest.h>

#include <map>

#include "goldens.h"
#include "p2l/diffusion/schedule.h"
#include "p2l/pipelines/text_to_image.h"

namespace p2l::test {
namespace {

using model::Layout;

class ModelGolden : public ::testing::TestWithParam<Layout> {
 protected:
  static model::StableDiffusion& model(Layout layout) {
    static std::map<Layout, model::StableDiffusion> cache;
    auto it = cache.find(layout);
    if (it == cache.end()) it = cache.emplace(layout, load_golden_model(layout)).first;
    return it->second;
  }
  model::StableDiffusion& sd() { return model(GetParam()); }
  const Goldens& g() { return Goldens::get(); }
};

TEST_P(ModelGolden, TextEncoderStates) {
  torch::NoGradGuard no_grad;
  const auto ids = g().tensor("tokens.input_ids");
  auto out = sd().text_encoder->forward(ids, /*keep_hidden_states=*/true);
  EXPECT_TRUE(matches_golden(out.last_hidden_state, "text.last_hidden_state"));
  const auto& hidden = out.hidden_states;
  ASSERT_GE(hidden.size(), 2u);
  EXPECT_TRUE(matches_golden(torch::stack(hidden, 0), "debug.text.hidden_states"));
  const auto& penultimate = hidden[hidden.size() - 2];
  EXPECT_TRUE(matches_golden(penultimate, "text.penultimate_hidden_state"));
  EXPECT_TRUE(matches_golden(sd().text_encoder->final_layer_norm(penultimate),
                             "text.clip_skip2_embeds"));
  EXPECT_TRUE(matches_golden(model::ClipTextModelImpl::pooled(out.last_hidden_state, ids),
                             "text.pooler_output"));
}

TEST_P(ModelGolden, UNetOutputAndIntermediates) {
  torch::NoGradGuard no_grad;
  model::ActivationTrace trace;
  auto out = sd().unet->forward(g().tensor("unet.sample"), g().tensor("unet.timesteps"),
                                g().tensor("unet.encoder_hidden_states"), &trace);
  EXPECT_TRUE(matches_golden(out, "unet.out"));
  int compared = 0;
  for (const auto& [name, value] : trace) {
    const std::string golden = "debug.unet." + name;
    if (!g().has(golden)) continue;
    EXPECT_TRUE(matches_golden(value, golden));
    ++compared;
  }
  EXPECT_GT(compared, 0);
}

TEST_P(ModelGolden, UNetGradients) {
  auto sample = g().tensor("unet.sample").requires_grad_(true);
  auto context = g().tensor("unet.encoder_hidden_states").requires_grad_(true);
  auto out = sd().unet->forward(sample, g().tensor("unet.timesteps"), context);
  (out * g().tensor("unet.grad_weight")).sum().backward();
  EXPECT_TRUE(matches_golden(sample.grad(), "unet.grad_sample", 1e-3));
  EXPECT_TRUE(matches_golden(context.grad(), "unet.grad_encoder_hidden_states", 1e-3));
}

TEST_P(ModelGolden, VaeEncoderPosterior) {
  torch::NoGradGuard no_grad;
  model::ActivationTrace trace;
  auto posterior = sd().vae->encode(g().tensor("vae.enc.image"), &trace);
  EXPECT_TRUE(matches_golden(posterior.mean, "vae.enc.mean"));
  EXPECT_TRUE(matches_golden(posterior.logvar, "vae.enc.logvar"));
  int compared = 0;
  for (const auto& [name, value] : trace) {
    if (!g().has("debug.vae." + name)) continue;
    EXPECT_TRUE(matches_golden(value, "debug.vae." + name));
    ++compared;
  }
  EXPECT_GT(compared, 0);
}

TEST_P(ModelGolden, VaeDecoderOutputAndGradient) {
  model::ActivationTrace trace;
  auto latent = g().tensor("vae.dec.latent").requires_grad_(true);
  auto out = sd().vae->decode(latent, &trace);
  EXPECT_TRUE(matches_golden(out, "vae.dec.out"));
  int compared = 0;
  for (const auto& [name, value] : trace) {
    if (!g().has("debug.vae." + name)) continue;
    EXPECT_TRUE(matches_golden(value, "debug.vae." + name));
    ++compared;
  }
  EXPECT_GT(compared, 0);
  (out * g().tensor("vae.dec.grad_weight")).sum().backward();
  EXPECT_TRUE(matches_golden(latent.grad(), "vae.dec.grad_latent", 1e-3));
}

TEST_P(ModelGolden, EndToEndSampling) {
  const auto ids = g().tensor("tokens.input_ids");
  const auto& prompts = g().meta().at("prompts");
  // The e2e run uses the prompt "a photo of a cat" against the negative prompt "", both among
  // the golden prompts; find their rows rather than assume positions.
  auto row_of = [&](const std::string& text) {
    for (size_t i = 0; i < prompts.size(); ++i)
      if (prompts[i].get<std::string>() == text) return static_cast<int64_t>(i);
    ADD_FAILURE() << "prompt not among the goldens: " << text;
    return int64_t{0};
  };
  const auto& desc = g().meta().at("tensors").at("e2e.final_latents").at("description");
  const std::string d = desc.get<std::string>();
  auto quoted = [&](const std::string& key) {
    const auto pos = d.find(key + "='");
    EXPECT_NE(pos, std::string::npos) << key;
    const auto start = pos + key.size() + 2;
    return d.substr(start, d.find('\'', start) - start);
  };
  auto number = [&](const std::string& key) {
    const auto pos = d.find(key + "=");
    EXPECT_NE(pos, std::string::npos) << key;
    return std::stod(d.substr(pos + key.size() + 1));
  };
  const int64_t cond_row = row_of(quoted("prompt"));
  const int64_t uncond_row = row_of(quoted("negative_prompt"));
  const auto init = g().tensor("e2e.init_latents");
  const auto timesteps = g().tensor("e2e.timesteps");
  const int64_t steps = timesteps.size(0);
  torch::Tensor cond, uncond;
  {
    torch::NoGradGuard no_grad;
    cond = sd().encode_tokens(ids.slice(0, cond_row, cond_row + 1));
    uncond = sd().encode_tokens(ids.slice(0, uncond_row, uncond_row + 1));
  }
  // The timesteps the sampler visits are the golden ones.
  const auto ours = sd().schedule->timesteps(steps);
  for (int64_t i = 0; i < steps; ++i) EXPECT_EQ(ours[i], timesteps[i].item<int64_t>());
  int64_t callbacks = 0;
  auto result = pipelines::sample_ddim(sd(), cond, uncond, init, steps,
                                       number("guidance_scale"), number("eta"), 0,
                                       [&](int64_t, int64_t) { ++callbacks; });
  EXPECT_EQ(callbacks, steps);
  EXPECT_TRUE(matches_golden(result.latents_per_step, "e2e.latents_per_step"));
  EXPECT_TRUE(matches_golden(result.latents, "e2e.final_latents"));
  EXPECT_TRUE(matches_golden(result.decoded, "e2e.decoded"));
  EXPECT_TRUE(matches_golden(result.image, "e2e.image"));
}

INSTANTIATE_TEST_SUITE_P(BothLayouts, ModelGolden,
                         ::testing::Values(Layout::Diffusers, Layout::SingleFile),
                         [](const auto& info) {
                           return info.param == Layout::Diffusers ? "Diffusers" : "SingleFile";
                         });

TEST(ModelLayouts, BothLayoutsLoadIdenticalWeights) {
  auto a = load_golden_model(Layout::Diffusers);
  auto b = load_golden_model(Layout::SingleFile);
  for (auto [ma, mb] : std::vector<std::pair<torch::nn::Module*, torch::nn::Module*>>{
           {a.unet.ptr().get(), b.unet.ptr().get()},
           {a.vae.ptr().get(), b.vae.ptr().get()},
           {a.text_encoder.ptr().get(), b.text_encoder.ptr().get()}}) {
    auto pa = ma->named_parameters();
    auto pb = mb->named_parameters();
    ASSERT_EQ(pa.size(), pb.size());
    for (const auto& item : pa)
      EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
  }
  EXPECT_EQ(a.config.unet.to_json(), b.config.unet.to_json());
  EXPECT_EQ(a.config.vae.to_json(), b.config.vae.to_json());
  EXPECT_EQ(a.config.text.to_json(), b.config.text.to_json());
}

}  // namespace
}  // namespace p2l::test
