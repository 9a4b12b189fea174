#include "p2l/pipelines/text_to_image.h"

#include <cmath>

#include "p2l/error.h"
#include "p2l/model/memory.h"

namespace p2l::pipelines {

TextToImageResult sample_ddim(model::StableDiffusion& model, const torch::Tensor& cond,
                              const torch::Tensor& uncond, const torch::Tensor& init_latents,
                              int64_t steps, double cfg_scale, double eta, uint64_t noise_seed,
                              const StepCallback& on_step) {
  torch::NoGradGuard no_grad;
  const auto& schedule = *model.schedule;
  const auto timesteps = schedule.timesteps(steps);
  const bool guided = cfg_scale != 1.0;
  // diffusers batches [negative, positive] through the UNet in one call.
  const auto context = guided ? torch::cat({uncond, cond}, 0) : cond;
  auto gen = at::detail::createCPUGenerator(noise_seed);
  auto latents = init_latents.to(model.device(), model.arithmetic_dtype());
  std::vector<torch::Tensor> per_step;
  for (size_t i = 0; i < timesteps.size(); ++i) {
    const int64_t t = timesteps[i];
    const auto t_tensor = torch::tensor({t}, torch::kLong);
    torch::Tensor eps;
    if (guided) {
      auto both = model.predict_noise(torch::cat({latents, latents}, 0), t_tensor, context);
      auto parts = both.chunk(2, 0);
      eps = parts[0] + cfg_scale * (parts[1] - parts[0]);
    } else {
      eps = model.predict_noise(latents, t_tensor, context);
    }
    const float a_t = schedule.alpha_bar(t);
    const float a_prev = schedule.alpha_bar(schedule.previous_timestep(t, steps));
    torch::Tensor noise;
    if (eta > 0)
      noise = torch::randn(latents.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat))
                  .to(latents.options());
    latents = diffusion::ddim_step(latents, eps, a_t, a_prev, eta, noise).prev_sample;
    per_step.push_back(latents);
    if (on_step) on_step(static_cast<int64_t>(i) + 1, steps);
  }
  TextToImageResult result;
  result.latents = latents;
  result.latents_per_step = torch::stack(per_step, 0);
  result.decoded = model.decode(latents);
  result.image = (result.decoded / 2 + 0.5).clamp(0, 1);
  return result;
}

TextToImageResult text_to_image(model::StableDiffusion& model, const TextToImageOptions& o,
                                const StepCallback& on_step) {
  const int64_t f = model.config.vae.downsampling_factor();
  if (o.width <= 0 || o.height <= 0 || o.width % f != 0 || o.height % f != 0)
    throw Error("image size " + std::to_string(o.width) + "x" + std::to_string(o.height) +
                " must be positive multiples of " + std::to_string(f));
  if (o.steps <= 0) throw Error("--steps must be positive");
  if (!std::isfinite(o.cfg_scale) || !std::isfinite(o.eta))
    throw Error("the guidance scale and eta must be finite numbers");
  model::check_run_fits(model.config, 1, o.height, o.width, model.vae_dtype(), model.device(),
                        "sample");
  torch::Tensor cond, uncond;
  {
    torch::NoGradGuard no_grad;
    auto states = model.encode_prompts({o.negative_prompt, o.prompt});
    uncond = states.slice(0, 0, 1);
    cond = states.slice(0, 1, 2);
  }
  const auto init = diffusion::seeded_normal({1, model.config.unet.in_channels, o.height / f, o.width / f},
                                  o.seed, torch::TensorOptions().dtype(torch::kFloat));
  return sample_ddim(model, cond, uncond, init, o.steps, o.cfg_scale, o.eta, o.seed + 1, on_step);
}

}  // namespace p2l::pipelines
