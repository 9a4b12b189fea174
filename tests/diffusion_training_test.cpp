// The UNet stage's training options on the shipped emoji model: mirror augmentation (which
// emoji may be mirrored, the mirrored latents, and that the option changes nothing but the
// latents drawn), min-SNR-γ loss weighting (its weights, and that a γ above every SNR is the
// plain loss), offset noise (its constants, and that it changes nothing but the noise),
// balanced draws (every base emoji equally often), resuming from a checkpoint (bit for bit) and
// training on a CUDA device.
#include <gtest/gtest.h>

#include <torch/cuda.h>

#include <filesystem>

#include "p2l/error.h"
#include "p2l/model/checkpoint.h"
#include "p2l/train/emoji_dataset.h"
#include "p2l/train/trainers.h"
#include "scratch_dir.h"
#include "shipped_model.h"

namespace p2l::test {
namespace {

namespace fs = std::filesystem;

constexpr char kDiffusionTrainingScratch[] = "diffusion_training";
TEST(MirrorRule, SymbolsFlagsClocksAndDirectionsStayAsTheyAre) {
  EXPECT_TRUE(train::is_mirrorable("Smileys & Emotion", "face smiling", "grinning face"));
  EXPECT_TRUE(train::is_mirrorable("Animals & Nature", "animal mammal", "bear face"));
  EXPECT_TRUE(train::is_mirrorable("People & Body", "hand fingers open", "raised hand"));
  EXPECT_FALSE(train::is_mirrorable("Symbols", "alphanum", "squared sos"));
  EXPECT_FALSE(train::is_mirrorable("Symbols", "keycap", "hash key"));
  EXPECT_FALSE(train::is_mirrorable("Flags", "country flag", "andorra flag"));
  EXPECT_FALSE(train::is_mirrorable("Travel & Places", "time", "clock face one oclock"));
  EXPECT_FALSE(train::is_mirrorable("Objects", "money", "banknote with dollar sign"));
  EXPECT_FALSE(train::is_mirrorable("People & Body", "hand fingers closed", "left facing fist"));
  EXPECT_FALSE(train::is_mirrorable("Objects", "light & video", "right pointing magnifying glass"));
  // Whole words only: "bright" and "copyright" are not directions.
  EXPECT_TRUE(train::is_mirrorable("Objects", "light & video", "bright light bulb"));
}

TEST(MinSnrWeights, AreMinOfSnrAndGammaOverSnr) {
  const auto alphas = torch::tensor({0.01, 0.5, 5.0 / 6.0, 0.9, 0.999}, torch::kDouble);
  const auto w = train::min_snr_weights(alphas, 5.0);
  // SNR = 1/99, 1, 5, 9, 999.
  const std::vector<double> expected = {1.0, 1.0, 1.0, 5.0 / 9.0, 5.0 / 999.0};
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(w[static_cast<int64_t>(i)].item<double>(), expected[i], 1e-12) << "ᾱ index " << i;
}

TEST(OffsetNoise, IsOneConstantPerSampleAndChannelOfTheGivenStd) {
  auto gen = at::detail::createCPUGenerator(7);
  const auto noise = train::offset_noise(20000, 4, 0.1, gen);
  ASSERT_EQ(noise.sizes(), (std::vector<int64_t>{20000, 4, 1, 1}));
  EXPECT_NEAR(noise.std().item<double>(), 0.1, 0.002);  // 80,000 draws: std of the std ≈ 2.5e-4
  EXPECT_NEAR(noise.mean().item<double>(), 0.0, 0.002);
  // Every channel has its own constant.
  const auto per_channel = noise.view({20000, 4});
  EXPECT_LT(std::abs(torch::corrcoef(per_channel.t())[0][1].item<double>()), 0.05);
  auto again = at::detail::createCPUGenerator(7);
  EXPECT_TRUE(torch::equal(train::offset_noise(20000, 4, 0.1, again), noise));
}

// Balanced draws: every base as often as every other, each base's items alike; plain draws:
// every item alike. Bases of 1, 3 and 6 items, 60,000 draws (std of a share ≈ 0.002).
TEST(DrawItems, BalancedDrawsGiveEveryBaseTheSameShare) {
  std::vector<train::EmojiItem> items;
  for (const auto* base : {"A", "B", "B", "B", "C", "C", "C", "C", "C", "C"})
    items.push_back({base, "google", "", ""});
  train::LatentSet latents;
  latents.mean = torch::zeros({10, 4, 2, 2});
  latents.base_weights = train::base_weights(items);
  const auto share = [&](bool balance) {
    auto gen = at::detail::createCPUGenerator(11);
    const auto index = train::draw_items(latents, 60000, balance, gen);
    EXPECT_EQ(index.scalar_type(), torch::kLong);
    return torch::bincount(index, {}, 10).to(torch::kDouble) / 60000;
  };
  const auto balanced = share(true);
  EXPECT_NEAR(balanced[0].item<double>(), 1.0 / 3, 0.01);                     // A
  EXPECT_NEAR(balanced.slice(0, 1, 4).sum().item<double>(), 1.0 / 3, 0.01);   // B
  EXPECT_NEAR(balanced.slice(0, 4, 10).sum().item<double>(), 1.0 / 3, 0.01);  // C
  for (int64_t i = 4; i < 10; ++i) EXPECT_NEAR(balanced[i].item<double>(), 1.0 / 18, 0.005) << i;
  const auto plain = share(false);
  for (int64_t i = 0; i < 10; ++i) EXPECT_NEAR(plain[i].item<double>(), 0.1, 0.006) << i;
}

model::StableDiffusion fresh_model() { return model::load_stable_diffusion(kModel.string()); }

// Four made-up latents with distinct captions.
train::LatentSet made_up_latents(model::StableDiffusion& sd) {
  torch::manual_seed(3);
  const auto& u = sd.config.unet;
  train::LatentSet set;
  set.mean = torch::randn({4, u.in_channels, u.sample_size, u.sample_size});
  set.std = 0.05 * torch::ones_like(set.mean);
  set.ids = sd.tokenizer->tokenize_batch({"grinning face", "bear face", "raised hand", "red apple"},
                                         static_cast<int>(sd.config.text.max_positions));
  return set;
}

torch::Tensor flat_parameters(torch::nn::Module& module) {
  std::vector<torch::Tensor> flat;
  for (const auto& p : module.parameters()) flat.push_back(p.detach().flatten());
  return torch::cat(flat);
}

// The UNet after `steps` steps of train_diffusion from the shipped weights, in the run folder
// `name`: a new run, or with `resume` the one its last call left there (which checkpoints at
// its last step). `losses` receives each step's training loss.
torch::Tensor trained_unet(const train::LatentSet& latents, const train::DiffusionOptions& base,
                           const std::string& name, int64_t steps = 3, bool resume = false,
                           std::vector<double>* losses = nullptr) {
  auto sd = fresh_model();
  train::DiffusionOptions o = base;
  o.steps = steps;
  o.batch = 4;
  o.warmup = 1;
  o.resume = resume;
  o.checkpoint_every = 1000;
  const auto run = scratch_dir<kDiffusionTrainingScratch>() / name;
  if (!resume) fs::remove_all(run);
  train::StepReport report;
  if (losses) report = [losses](int64_t, int64_t, double loss) { losses->push_back(loss); };
  train::train_diffusion(sd, latents, o, run.string(), report);
  return flat_parameters(*sd.unet);
}

TEST(DiffusionTraining, MirrorChangesOnlyTheLatentsDrawn) {
  auto sd = fresh_model();
  auto latents = made_up_latents(sd);
  const auto plain = trained_unet(latents, {}, "plain");

  // Mirrors identical to the originals: the run must be the plain run, bit for bit (the coin
  // flips must not shift the other random draws).
  train::DiffusionOptions mirror;
  mirror.mirror = true;
  latents.mirrored_mean = latents.mean.clone();
  latents.mirrored_std = latents.std.clone();
  latents.mirrorable = torch::ones({4}, torch::kBool);
  EXPECT_TRUE(torch::equal(trained_unet(latents, mirror, "same-mirrors"), plain));

  // Real mirrors, but no item may be mirrored: still the plain run.
  latents.mirrored_mean = latents.mean.flip({3});
  latents.mirrorable = torch::zeros({4}, torch::kBool);
  EXPECT_TRUE(torch::equal(trained_unet(latents, mirror, "none-mirrorable"), plain));

  // Real mirrors that may be drawn: a different run.
  latents.mirrorable = torch::ones({4}, torch::kBool);
  EXPECT_FALSE(torch::equal(trained_unet(latents, mirror, "mirrored"), plain));
}

TEST(DiffusionTraining, BalancedDrawsNeedBaseWeights) {
  auto sd = fresh_model();
  auto latents = made_up_latents(sd);
  train::DiffusionOptions o;
  o.balance_bases = true;
  EXPECT_THROW(trained_unet(latents, o, "no-base-weights"), Error);
  // Four items of four bases: balanced draws are other draws than plain ones, but a run.
  latents.base_weights = torch::ones({4});
  const auto balanced = trained_unet(latents, o, "balanced");
  EXPECT_TRUE(torch::isfinite(balanced).all().item<bool>());
  EXPECT_FALSE(torch::equal(balanced, trained_unet(latents, {}, "plain-draws")));
}

TEST(DiffusionTraining, MirrorNeedsMirroredLatents) {
  auto sd = fresh_model();
  const auto latents = made_up_latents(sd);
  train::DiffusionOptions o;
  o.mirror = true;
  EXPECT_THROW(trained_unet(latents, o, "no-mirrors"), Error);
}

TEST(DiffusionTraining, SnrGammaAboveEverySnrIsThePlainLoss) {
  auto sd = fresh_model();
  const auto latents = made_up_latents(sd);
  const auto plain = trained_unet(latents, {}, "plain-loss");
  train::DiffusionOptions o;
  o.snr_gamma = 1e12;  // SD's largest SNR is ≈ 1.2e3: every weight is 1
  EXPECT_TRUE(torch::allclose(trained_unet(latents, o, "gamma-huge"), plain, 1e-5, 1e-6));
  o.snr_gamma = 1.0;
  EXPECT_FALSE(torch::allclose(trained_unet(latents, o, "gamma-1"), plain, 1e-5, 1e-6));
}

TEST(DiffusionTraining, NoiseOffsetChangesOnlyTheNoise) {
  auto sd = fresh_model();
  const auto latents = made_up_latents(sd);
  const auto plain = trained_unet(latents, {}, "plain-noise");
  train::DiffusionOptions o;
  o.noise_offset = 0.0;  // off: bit for bit the plain run
  EXPECT_TRUE(torch::equal(trained_unet(latents, o, "offset-0"), plain));
  o.noise_offset = 0.1;
  EXPECT_FALSE(torch::allclose(trained_unet(latents, o, "offset-0.1"), plain, 1e-5, 1e-6));
  o.noise_offset = -0.1;
  EXPECT_THROW(trained_unet(latents, o, "offset-negative"), Error);
}

TEST(DiffusionTraining, NameDropoutChangesOnlyTheCaptions) {
  auto sd = fresh_model();
  auto latents = made_up_latents(sd);
  const auto plain = trained_unet(latents, {}, "plain-names");
  train::DiffusionOptions o;
  o.name_dropout = 0.5;
  EXPECT_THROW(trained_unet(latents, o, "no-nameless"), Error);  // no captions without names
  // Nameless captions identical to the captions: the plain run, bit for bit (the coin flips
  // must not shift the other random draws).
  latents.nameless_ids = latents.ids.clone();
  EXPECT_TRUE(torch::equal(trained_unet(latents, o, "same-captions"), plain));
  latents.nameless_ids = sd.tokenizer->tokenize_batch(
      {"face smiling", "animal mammal", "hand fingers open", "food fruit"},
      static_cast<int>(sd.config.text.max_positions));
  EXPECT_FALSE(torch::equal(trained_unet(latents, o, "nameless"), plain));
  o.name_dropout = 0;  // off: the nameless captions are never drawn
  EXPECT_TRUE(torch::equal(trained_unet(latents, o, "name-dropout-0"), plain));
  o.name_dropout = 1.5;
  EXPECT_THROW(trained_unet(latents, o, "name-dropout-too-large"), Error);
}

TEST(DiffusionTraining, MirroredLatentsAreTheMirrorImagesEncodings) {
  auto sd = fresh_model();
  torch::manual_seed(5);
  train::EmojiSet data;
  data.images = torch::randint(0, 256, {2, 3, 64, 64}, torch::TensorOptions().dtype(torch::kUInt8));
  data.items = {{"A", "google", "a.png", "grinning face, face smiling, google style", true},
                {"B", "google", "b.png", "hash key, keycap, google style", false}};
  const auto set = train::encode_latents(sd.vae, data, *sd.tokenizer,
                                         sd.config.text.max_positions, /*mirrors=*/true);
  torch::NoGradGuard no_grad;
  const auto expected = sd.vae->encode(data.batch(torch::arange(2)).flip({3})).mean;
  EXPECT_TRUE(torch::allclose(set.mirrored_mean, expected, 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(set.mirrored_mean, set.mean, 1e-3, 1e-3));
  EXPECT_TRUE(set.mirrorable[0].item<bool>());
  EXPECT_FALSE(set.mirrorable[1].item<bool>());
  // The captions without the emoji's name, for name dropout.
  const auto nameless = sd.tokenizer->tokenize_batch(
      {"face smiling, google style", "keycap, google style"},
      static_cast<int>(sd.config.text.max_positions));
  EXPECT_TRUE(torch::equal(set.nameless_ids, nameless));
  EXPECT_FALSE(train::encode_latents(sd.vae, data, *sd.tokenizer, sd.config.text.max_positions)
                   .mirrored_mean.defined());
}

// A run stopped at a checkpoint and resumed is the uninterrupted run, bit for bit, with the
// UNet's dropout on (the recipe's 0.1), whose masks come from the global generator, not the
// step's.
TEST(DiffusionTraining, ResumedRunIsTheUninterruptedRun) {
  auto sd = fresh_model();
  const auto latents = made_up_latents(sd);
  train::DiffusionOptions o;
  o.dropout = 0.1;
  o.schedule_steps = 3;  // the learning rates of a 3-step run in the 2-step one too
  const auto whole = trained_unet(latents, o, "uninterrupted");
  trained_unet(latents, o, "interrupted", 2);
  EXPECT_TRUE(torch::equal(trained_unet(latents, o, "interrupted", 3, /*resume=*/true), whole));
  o.dropout = 0;  // the dropout acts: without it, another run
  EXPECT_FALSE(torch::equal(trained_unet(latents, o, "without-dropout"), whole));
}

// The UNet stage on a CUDA device (DiffusionOptions::device; skipped without one): the batches,
// timesteps and noise are drawn on the CPU, so each step's loss is the CPU run's up to rounding,
// the weights come back to the CPU close to the CPU run's, and a checkpoint written on one device
// resumes on the other.
TEST(DiffusionTraining, CudaTracksTheCpuAndCheckpointsResumeAcrossDevices) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto sd = fresh_model();
  const auto latents = made_up_latents(sd);
  const auto initial = flat_parameters(*sd.unet);
  train::DiffusionOptions o;
  o.schedule_steps = 3;
  o.ema_decay = 0;  // the weights returned are the last step's
  std::vector<double> cpu_losses;
  const auto cpu = trained_unet(latents, o, "cpu", 3, false, &cpu_losses);
  // The losses are smooth in the weights: cuDNN's TF32 convolutions (on by default on Ampere
  // and newer) round to about 1e-3.
  auto expect_losses = [&](const std::vector<double>& losses, size_t from) {
    ASSERT_EQ(losses.size() + from, cpu_losses.size());
    for (size_t i = 0; i < losses.size(); ++i)
      EXPECT_NEAR(losses[i], cpu_losses[from + i], 1e-2 * cpu_losses[from + i])
          << "step " << from + i;
  };
  // The weights' distance to the CPU run's relative to how far that run moved them. Adam moves
  // each weight by about lr · sign(gradient), so the share f of weights whose gradient is within
  // rounding of 0 may move the other way, a distance of about 2·√f: 0.2 allows f up to 1 %;
  // an unrelated update is about 1.4 away.
  auto gap = [&](const torch::Tensor& w) {
    EXPECT_TRUE(w.device().is_cpu());
    return ((w - cpu).norm() / (cpu - initial).norm()).item<double>();
  };
  const double tolerance = 0.2;
  train::DiffusionOptions cuda = o;
  cuda.device = torch::kCUDA;
  std::vector<double> losses;
  EXPECT_LT(gap(trained_unet(latents, cuda, "cuda", 3, false, &losses)), tolerance);
  expect_losses(losses, 0);
  trained_unet(latents, cuda, "cuda-then-cpu", 2);
  losses.clear();
  EXPECT_LT(gap(trained_unet(latents, o, "cuda-then-cpu", 3, /*resume=*/true, &losses)), tolerance);
  expect_losses(losses, 2);
  trained_unet(latents, o, "cpu-then-cuda", 2);
  losses.clear();
  EXPECT_LT(gap(trained_unet(latents, cuda, "cpu-then-cuda", 3, /*resume=*/true, &losses)),
            tolerance);
  expect_losses(losses, 2);
}

}  // namespace
}  // namespace p2l::test
