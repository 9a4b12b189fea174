#include "p2l/train/trainers.h"

#include <filesystem>
#include <numeric>

#include "p2l/error.h"
#include "p2l/log.h"
#include "p2l/train/training_state.h"

namespace p2l::train {

namespace fs = std::filesystem;

namespace {

torch::Tensor random_batch(int64_t n, int64_t batch, at::Generator& gen) {
  return torch::randint(n, {batch}, gen, torch::TensorOptions().dtype(torch::kLong));
}

void check_finite(double loss, int64_t step, const std::string& stage) {
  if (!std::isfinite(loss))
    throw Error(stage + " training diverged at step " + std::to_string(step) +
                " (loss is " + std::to_string(loss) + "); lower --lr and resume");
}

}  // namespace

model::VaeConfig emoji_vae_config() {
  model::VaeConfig c;
  c.block_out_channels = {32, 64, 64};
  c.layers_per_block = 1;
  c.latent_channels = 4;
  c.norm_groups = 32;
  c.scaling_factor = 1.0;  // set from the data after training
  return c;
}

model::ClipTextConfig emoji_text_config(int64_t vocab_size, int64_t width, int64_t layers) {
  if (width <= 0 || width % 4 != 0 || layers <= 0)
    throw Error("text encoder: width " + std::to_string(width) + " and " + std::to_string(layers) +
                " layers; the width must be a positive multiple of 4 heads, the layers positive");
  model::ClipTextConfig c;
  c.vocab_size = vocab_size;
  c.hidden_size = width;
  c.intermediate_size = 4 * width;
  c.num_layers = layers;
  c.num_heads = 4;
  c.max_positions = 77;
  return c;
}

model::UNetConfig emoji_unet_config(int64_t context_dim, std::vector<bool> attention,
                                    std::vector<int64_t> channels) {
  model::UNetConfig c;
  c.block_out_channels = std::move(channels);
  c.attention_levels = std::move(attention);
  c.layers_per_block = 1;
  c.num_heads = 4;
  c.context_dim = context_dim;
  c.sample_size = 16;
  c.validate();  // widths that the group norm or the heads cannot split fail here, in one line
  return c;
}

model::AutoencoderKL train_vae(const EmojiSet& data, const model::VaeConfig& config,
                               const VaeOptions& o, const std::string& run_dir,
                               const StepReport& report) {
  fs::create_directories(run_dir);
  torch::manual_seed(o.seed);
  model::AutoencoderKL vae(config), ema(config);
  copy_parameters(*ema, *vae);
  if (o.channels_last) model::use_channels_last(*vae);
  torch::optim::Adam optimizer(vae->parameters(), torch::optim::AdamOptions(o.lr));
  const std::string state = (fs::path(run_dir) / "vae.state").string();
  int64_t step = 0;
  if (o.resume && fs::exists(state)) {
    step = load_training_state(state, {{"model", vae.ptr().get()}, {"ema", ema.ptr().get()}},
                               optimizer);
    log::info("vae: resuming at step " + std::to_string(step));
  }
  vae->train();
  const int64_t n = data.images.size(0);
  for (; step < o.steps; ++step) {
    set_learning_rate(optimizer, cosine_lr(o.lr, step, o.steps, o.warmup, 0.05));
    auto gen = step_generator(o.seed, step);
    auto x = data.batch(random_batch(n, o.batch, gen));
    const bool whole = step >= static_cast<int64_t>((1 - o.whole_image_fraction) * o.steps);
    if (!whole && o.crop > 0 && o.crop < x.size(2)) {
      // One random crop position per step (multiples of the down-sampling factor).
      const int64_t f = config.downsampling_factor();
      const int64_t cells = (x.size(2) - o.crop) / f + 1;
      auto pos = torch::randint(cells, {2}, gen, torch::TensorOptions().dtype(torch::kLong));
      x = x.slice(2, pos[0].item<int64_t>() * f, pos[0].item<int64_t>() * f + o.crop)
              .slice(3, pos[1].item<int64_t>() * f, pos[1].item<int64_t>() * f + o.crop);
    }
    if (o.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    auto posterior = vae->encode(x);
    auto noise = torch::randn(posterior.mean.sizes(), gen, x.options());
    auto z = posterior.mean + torch::exp(0.5 * posterior.logvar) * noise;
    auto rec = vae->decode(z);
    auto kl = 0.5 * (posterior.mean.pow(2) + posterior.logvar.exp() - 1 - posterior.logvar)
                        .sum() / o.batch;
    auto loss = (rec - x).abs().mean() + (rec - x).pow(2).mean() + o.kl_weight * kl;
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    ema_update(*ema, *vae, step < o.warmup ? 0.0 : o.ema_decay);
    const double value = loss.item<double>();
    check_finite(value, step, "vae");
    if ((step + 1) % o.checkpoint_every == 0 || step + 1 == o.steps)
      save_training_state(state, step + 1, {{"model", vae.ptr().get()}, {"ema", ema.ptr().get()}},
                          optimizer);
    if (report) report(step + 1, o.steps, value);
  }
  ema->eval();
  return ema;
}

model::AutoencoderKL finetune_decoder(model::AutoencoderKL& vae, const EmojiSet& data,
                                      const StageOptions& o, const std::string& run_dir,
                                      const StepReport& report) {
  fs::create_directories(run_dir);
  torch::manual_seed(o.seed);
  const auto& config = vae->config();
  // The frozen encoder's posteriors, once: every step then costs one decoder pass.
  torch::Tensor means, stds;
  {
    torch::NoGradGuard no_grad;
    vae->eval();
    std::vector<torch::Tensor> m, s;
    const int64_t n = data.images.size(0);
    for (int64_t start = 0; start < n; start += 64) {
      auto posterior = vae->encode(data.batch(torch::arange(start, std::min(n, start + 64))));
      m.push_back(posterior.mean.contiguous());
      s.push_back(torch::exp(0.5 * posterior.logvar).contiguous());
    }
    means = torch::cat(m);
    stds = torch::cat(s);
  }
  model::AutoencoderKL ema(config);
  copy_parameters(*ema, *vae);
  if (o.channels_last) model::use_channels_last(*vae);
  std::vector<torch::Tensor> params;
  for (const auto& item : vae->named_parameters()) {
    const bool decoder = item.key().rfind("decoder.", 0) == 0 ||
                         item.key().rfind("post_quant_conv.", 0) == 0;
    item.value().set_requires_grad(decoder);
    if (decoder) params.push_back(item.value());
  }
  torch::optim::Adam optimizer(params, torch::optim::AdamOptions(o.lr));
  const std::string state = (fs::path(run_dir) / "decoder.state").string();
  int64_t step = 0;
  if (o.resume && fs::exists(state)) {
    step = load_training_state(state, {{"model", vae.ptr().get()}, {"ema", ema.ptr().get()}},
                               optimizer);
    log::info("decoder: resuming at step " + std::to_string(step));
  }
  vae->train();
  const int64_t n = means.size(0);
  for (; step < o.steps; ++step) {
    set_learning_rate(optimizer, cosine_lr(o.lr, step, o.steps, o.warmup, 0.05));
    auto gen = step_generator(o.seed, step);
    auto index = random_batch(n, o.batch, gen);
    auto x = data.batch(index);
    auto mean = means.index_select(0, index);
    auto z = mean + stds.index_select(0, index) * torch::randn(mean.sizes(), gen, mean.options());
    if (o.channels_last) {
      x = x.contiguous(at::MemoryFormat::ChannelsLast);
      z = z.contiguous(at::MemoryFormat::ChannelsLast);
    }
    auto rec = vae->decode(z);
    auto loss = (rec - x).abs().mean() + (rec - x).pow(2).mean();
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    ema_update(*ema, *vae, step < o.warmup ? 0.0 : o.ema_decay);
    const double value = loss.item<double>();
    check_finite(value, step, "decoder");
    if ((step + 1) % o.checkpoint_every == 0 || step + 1 == o.steps)
      save_training_state(state, step + 1, {{"model", vae.ptr().get()}, {"ema", ema.ptr().get()}},
                          optimizer);
    if (report) report(step + 1, o.steps, value);
  }
  for (auto& p : vae->parameters()) p.set_requires_grad(true);
  ema->eval();
  return ema;
}

std::vector<double> reconstruction_psnrs(model::AutoencoderKL& vae, const EmojiSet& data,
                                         int64_t batch) {
  torch::NoGradGuard no_grad;
  vae->eval();
  const int64_t n = data.images.size(0);
  std::vector<double> psnrs;
  psnrs.reserve(n);
  for (int64_t start = 0; start < n; start += batch) {
    auto index = torch::arange(start, std::min(n, start + batch), torch::kLong);
    auto x = data.batch(index);
    auto rec = vae->decode(vae->encode(x).mean).clamp(-1, 1);
    auto mse = ((rec - x) / 2).pow(2).mean({1, 2, 3});
    auto psnr = (-10 * torch::log10(mse.clamp_min(1e-12))).to(torch::kDouble).contiguous();
    psnrs.insert(psnrs.end(), psnr.data_ptr<double>(), psnr.data_ptr<double>() + psnr.numel());
  }
  return psnrs;
}

double reconstruction_psnr(model::AutoencoderKL& vae, const EmojiSet& data, int64_t batch) {
  const auto psnrs = reconstruction_psnrs(vae, data, batch);
  return std::accumulate(psnrs.begin(), psnrs.end(), 0.0) / static_cast<double>(psnrs.size());
}

LatentSet encode_latents(model::AutoencoderKL& vae, const EmojiSet& data,
                         const model::ClipTokenizer& tokenizer, int64_t max_length, bool mirrors) {
  torch::NoGradGuard no_grad;
  vae->eval();
  std::vector<torch::Tensor> means, stds, mirrored_means, mirrored_stds;
  const int64_t n = data.images.size(0);
  for (int64_t start = 0; start < n; start += 64) {
    auto index = torch::arange(start, std::min(n, start + 64), torch::kLong);
    auto images = data.batch(index);
    auto posterior = vae->encode(images);
    means.push_back(posterior.mean);
    stds.push_back(torch::exp(0.5 * posterior.logvar));
    if (!mirrors) continue;
    // The mirror image's own encoding: the encoder is not mirror-symmetric, so flipping the
    // latent would not give it.
    auto mirrored = vae->encode(images.flip({3}));
    mirrored_means.push_back(mirrored.mean);
    mirrored_stds.push_back(torch::exp(0.5 * mirrored.logvar));
  }
  LatentSet set;
  set.mean = torch::cat(means, 0);
  set.std = torch::cat(stds, 0);
  const auto captions = data.captions();
  set.ids = tokenizer.tokenize_batch(captions, static_cast<int>(max_length));
  std::vector<std::string> nameless;
  for (const auto& caption : captions) nameless.push_back(caption_without_name(caption));
  set.nameless_ids = tokenizer.tokenize_batch(nameless, static_cast<int>(max_length));
  set.base_weights = base_weights(data.items);
  if (mirrors) {
    set.mirrored_mean = torch::cat(mirrored_means, 0);
    set.mirrored_std = torch::cat(mirrored_stds, 0);
    std::vector<uint8_t> flags;
    for (const auto& item : data.items) flags.push_back(item.mirrorable ? 1 : 0);
    set.mirrorable = torch::tensor(flags, torch::kUInt8).to(torch::kBool);
  }
  return set;
}

torch::Tensor min_snr_weights(const torch::Tensor& alphas_cumprod, double gamma) {
  auto snr = alphas_cumprod / (1 - alphas_cumprod);
  return snr.clamp_max(gamma) / snr;
}

torch::Tensor offset_noise(int64_t batch, int64_t channels, double offset, at::Generator& gen) {
  return offset * torch::randn({batch, channels, 1, 1}, gen,
                               torch::TensorOptions().dtype(torch::kFloat));
}

torch::Tensor draw_items(const LatentSet& latents, int64_t batch, bool balance_bases,
                         at::Generator& gen) {
  if (!balance_bases) return random_batch(latents.mean.size(0), batch, gen);
  return torch::multinomial(latents.base_weights, batch, /*replacement=*/true, gen);
}

void train_diffusion(model::StableDiffusion& sd, const LatentSet& latents,
                     const DiffusionOptions& o, const std::string& run_dir,
                     const StepReport& report, const DiffusionMonitor& monitor) {
  fs::create_directories(run_dir);
  torch::manual_seed(o.seed);
  const auto& config = sd.config;
  model::UNet ema_unet(config.unet);
  model::ClipTextModel ema_text(config.text);
  const auto home = sd.device();
  // On the training device before the optimiser takes the parameters.
  sd.unet->to(o.device);
  sd.text_encoder->to(o.device);
  ema_unet->to(o.device);
  ema_text->to(o.device);
  copy_parameters(*ema_unet, *sd.unet);
  copy_parameters(*ema_text, *sd.text_encoder);
  if (o.channels_last) model::use_channels_last(*sd.unet);
  std::vector<torch::Tensor> params = sd.unet->parameters();
  for (const auto& p : sd.text_encoder->parameters()) params.push_back(p);
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(o.lr).weight_decay(1e-2));
  const std::string state = (fs::path(run_dir) / "diffusion.state").string();
  const std::vector<std::pair<std::string, torch::nn::Module*>> modules = {
      {"unet", sd.unet.ptr().get()},
      {"text", sd.text_encoder.ptr().get()},
      {"ema_unet", ema_unet.ptr().get()},
      {"ema_text", ema_text.ptr().get()}};
  int64_t step = 0;
  if (o.resume && fs::exists(state)) {
    step = load_training_state(state, modules, optimizer);
    log::info("diffusion: resuming at step " + std::to_string(step));
  }
  sd.unet->set_dropout(o.dropout);
  sd.unet->train();
  sd.text_encoder->train();
  model::StableDiffusion ema = sd;  // shares the VAE and tokenizer, holds the EMA networks
  ema.unet = ema_unet;
  ema.text_encoder = ema_text;
  const auto null_ids = sd.tokenizer->tokenize_batch({""}, static_cast<int>(latents.ids.size(1)));
  const auto& alphas = sd.schedule->alphas_cumprod();
  const double scale = config.vae.scaling_factor;
  const int64_t T = config.schedule.num_train_timesteps;
  const int64_t schedule = o.schedule_steps > 0 ? o.schedule_steps : o.steps;
  if (o.mirror && !latents.mirrored_mean.defined())
    throw Error("diffusion: mirror augmentation needs latents encoded with their mirror images");
  if (o.snr_gamma < 0) throw Error("diffusion: the min-SNR γ must be ≥ 0 (0 = off)");
  if (o.noise_offset < 0) throw Error("diffusion: the noise offset must be ≥ 0 (0 = off)");
  if (o.name_dropout < 0 || o.name_dropout > 1)
    throw Error("diffusion: the name dropout must be in [0, 1] (0 = off)");
  if (o.name_dropout > 0 && !latents.nameless_ids.defined())
    throw Error("diffusion: name dropout needs the captions without their names");
  if (o.balance_bases && (!latents.base_weights.defined() ||
                          latents.base_weights.numel() != latents.mean.size(0)))
    throw Error("diffusion: balanced draws need one base weight per item (LatentSet::base_weights)");
  for (; step < o.steps; ++step) {
    set_learning_rate(optimizer, cosine_lr(o.lr, step, schedule, o.warmup, 0.1));
    auto gen = step_generator(o.seed, step);
    // The UNet's dropout draws from the global generators (the CPU's and the device's): seeded
    // by the step as well, so a resumed run's masks are those of the uninterrupted run.
    torch::manual_seed(step_seed(o.seed, step));
    auto index = draw_items(latents, o.batch, o.balance_bases, gen);
    auto mean = latents.mean.index_select(0, index);
    auto std = latents.std.index_select(0, index);
    auto posterior_noise = torch::randn(mean.sizes(), gen, mean.options());
    auto ids = latents.ids.index_select(0, index);
    // Caption dropout: the null prompt's ids for a share of the batch.
    auto drop = torch::rand({o.batch}, gen) < o.caption_dropout;
    ids = torch::where(drop.unsqueeze(1), null_ids.expand_as(ids), ids);
    auto t = torch::randint(T, {o.batch}, gen, torch::TensorOptions().dtype(torch::kLong));
    auto eps = torch::randn(mean.sizes(), gen, mean.options());
    if (o.mirror) {  // drawn last, so the other draws are those of a run without mirrors
      auto flip = (torch::rand({o.batch}, gen) < 0.5) & latents.mirrorable.index_select(0, index);
      flip = flip.view({-1, 1, 1, 1});
      mean = torch::where(flip, latents.mirrored_mean.index_select(0, index), mean);
      std = torch::where(flip, latents.mirrored_std.index_select(0, index), std);
    }
    if (o.noise_offset > 0)  // drawn after the others too
      eps = eps + offset_noise(o.batch, eps.size(1), o.noise_offset, gen).to(eps.options());
    if (o.name_dropout > 0) {  // drawn last as well; a dropped caption stays the null prompt
      auto nameless = (torch::rand({o.batch}, gen) < o.name_dropout) & ~drop;
      ids = torch::where(nameless.unsqueeze(1), latents.nameless_ids.index_select(0, index), ids);
    }
    auto z0 = (mean + std * posterior_noise) * scale;
    auto a = alphas.index_select(0, t).view({-1, 1, 1, 1});
    auto zt = (a.sqrt() * z0 + (1 - a).sqrt() * eps).to(o.device);
    if (o.channels_last) zt = zt.contiguous(at::MemoryFormat::ChannelsLast);
    auto context = sd.text_encoder->forward(ids.to(o.device)).last_hidden_state;
    auto error = (sd.unet->forward(zt, t.to(o.device), context) - eps.to(o.device)).pow(2);
    auto loss = o.snr_gamma > 0 ? (error.mean({1, 2, 3}) *
                                   min_snr_weights(a.flatten(), o.snr_gamma).to(o.device))
                                      .mean()
                                : error.mean();
    optimizer.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    optimizer.step();
    const double decay = step < o.warmup ? 0.0 : o.ema_decay;
    ema_update(*ema_unet, *sd.unet, decay);
    ema_update(*ema_text, *sd.text_encoder, decay);
    const double value = loss.item<double>();
    check_finite(value, step, "diffusion");
    if ((step + 1) % o.checkpoint_every == 0 || step + 1 == o.steps)
      save_training_state(state, step + 1, modules, optimizer);
    if (report) report(step + 1, o.steps, value);
    if (monitor && o.monitor_every > 0 && (step + 1) % o.monitor_every == 0) monitor(step + 1, ema);
  }
  copy_parameters(*sd.unet, *ema_unet);
  copy_parameters(*sd.text_encoder, *ema_text);
  sd.unet->to(home);
  sd.text_encoder->to(home);
  sd.eval();
}

double denoising_loss(model::StableDiffusion& sd, const LatentSet& latents, uint64_t seed,
                      int64_t levels, int64_t batch) {
  torch::NoGradGuard no_grad;
  sd.eval();
  auto gen = at::detail::createCPUGenerator(seed);
  const auto device = sd.device();
  const auto& alphas = sd.schedule->alphas_cumprod();
  const int64_t n = latents.mean.size(0);
  const int64_t T = sd.config.schedule.num_train_timesteps;
  double total = 0;
  for (int64_t start = 0; start < n; start += batch) {
    const int64_t b = std::min(n, start + batch) - start;
    auto z0 = latents.mean.slice(0, start, start + b) * sd.config.vae.scaling_factor;
    auto context = sd.encode_tokens(latents.ids.slice(0, start, start + b));
    for (int64_t k = 0; k < levels; ++k) {
      const int64_t level = (2 * k + 1) * T / (2 * levels);  // midpoints of `levels` equal bins
      auto t = torch::full({b}, level, torch::TensorOptions().dtype(torch::kLong));
      auto eps = torch::randn(z0.sizes(), gen, z0.options());
      auto a = alphas.index_select(0, t).view({-1, 1, 1, 1});
      auto zt = (a.sqrt() * z0 + (1 - a).sqrt() * eps).to(device);
      total += (sd.unet->forward(zt, t.to(device), context) - eps.to(device))
                   .pow(2)
                   .mean({1, 2, 3})
                   .sum()
                   .item<double>();
    }
  }
  return total / (n * levels);
}

}  // namespace p2l::train
