// Training of p2l's small text-to-image latent diffusion model (same architecture code as SD v1,
// smaller configurations): the KL autoencoder first, then the text encoder and UNet jointly on
// the autoencoder's latents. Every stage checkpoints to its run folder and resumes from it; each
// step's randomness is drawn from (seed, step), so a resumed run continues exactly as an
// uninterrupted one would.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "p2l/model/stable_diffusion.h"
#include "p2l/train/emoji_dataset.h"

namespace p2l::train {

// The shipped 64×64 emoji model's architecture.
model::VaeConfig emoji_vae_config();  // 3 levels: f = 4, 16×16×4 latents
// width and layers: the shipped model's 64 and 2 unless an experiment asks for another size
// (4 heads, MLP 4 × width).
model::ClipTextConfig emoji_text_config(int64_t vocab_size, int64_t width = 64, int64_t layers = 2);
// The shipped UNet's width at each level, from the 16×16 one down.
inline const std::vector<int64_t> kEmojiUnetChannels = {32, 64, 128};
// attention: cross-attention at each level, from the 16×16 one down; the shipped model's has it at
// the two lower levels. channels: each level's width (multiples of the norm groups).
model::UNetConfig emoji_unet_config(int64_t context_dim,
                                    std::vector<bool> attention = {false, true, true},
                                    std::vector<int64_t> channels = kEmojiUnetChannels);

struct StageOptions {
  int64_t steps = 1000;
  int64_t batch = 32;
  double lr = 1e-3;
  int64_t warmup = 100;
  double ema_decay = 0.999;
  uint64_t seed = 0;
  int64_t checkpoint_every = 250;
  bool resume = true;
  bool channels_last = true;  // NHWC weights and activations: faster CPU convolutions
};

// (step, total, loss) after every step.
using StepReport = std::function<void(int64_t step, int64_t total, double loss)>;

struct VaeOptions : StageOptions {
  double kl_weight = 1e-6;
  // Train on random crops of this side (0 = whole images): the autoencoder is convolutional,
  // and crops cut the cost per step by (64/crop)² on a CPU.
  int64_t crop = 32;
  // The last share of the steps sees whole images, so the mid-block attention learns the full
  // 16×16 latent grid it works on at inference.
  double whole_image_fraction = 0.1;
};
// Trains (or resumes) the autoencoder in run_dir/vae.state; returns the EMA model.
model::AutoencoderKL train_vae(const EmojiSet& data, const model::VaeConfig& config,
                               const VaeOptions& options, const std::string& run_dir,
                               const StepReport& report = {});

// Fine-tunes the decoder alone (with post_quant_conv) on whole images, the encoder frozen: the
// latents the UNet learns stay exactly the same, so this sharpens reconstructions without
// retraining the UNet. Checkpoints in run_dir/decoder.state; returns the EMA model.
model::AutoencoderKL finetune_decoder(model::AutoencoderKL& vae, const EmojiSet& data,
                                      const StageOptions& options, const std::string& run_dir,
                                      const StepReport& report = {});

// PSNR (dB, images in [0, 1]) of decode(encode(x).mean) for each image of a set, in its order,
// and their mean.
std::vector<double> reconstruction_psnrs(model::AutoencoderKL& vae, const EmojiSet& data,
                                         int64_t batch = 64);
double reconstruction_psnr(model::AutoencoderKL& vae, const EmojiSet& data, int64_t batch = 64);

struct DiffusionOptions : StageOptions {
  // At 16×16 latents channels-last is slower than NCHW for the UNet (bench/bench_train_step).
  DiffusionOptions() { channels_last = false; }
  double caption_dropout = 0.1;  // share of captions replaced by "" (for guidance, P2L's null text)
  double dropout = 0.0;          // residual-block dropout of the UNet (against over-fitting)
  // Length of the cosine learning-rate schedule when it differs from `steps` (stopping early on
  // a longer schedule); 0 = `steps`.
  int64_t schedule_steps = 0;
  int64_t monitor_every = 0;     // steps between DiffusionMonitor calls (0 = never)
  // Draw the mirror image's latent for half of the mirrorable items (LatentSet::mirrorable):
  // twice the images for the emoji that read the same both ways round.
  bool mirror = false;
  // Min-SNR-γ loss weighting (Hang et al. 2023), 0 = plain ε-MSE: each sample's loss is scaled
  // by min(SNR(t), γ) / SNR(t), so the nearly noise-free timesteps, whose ε is hard to predict
  // and matters least for the image, stop dominating the gradient.
  double snr_gamma = 0;
  // Offset noise (Guttenberg 2023), 0 = off: ε gets a per-sample, per-channel constant of this
  // standard deviation. SD's schedule leaves ᾱ_T ≈ 0.005, and a 16×16 latent's noise has a
  // spatial mean of std 1/16, which a UNet trained on plain noise reads as the image's mean
  // colour: the seed, not the caption, would then pick the colour of a sample.
  double noise_offset = 0;
  // Name dropout, 0 = off: this share of the captions loses the emoji's name
  // (LatentSet::nameless_ids), so the UNet learns to draw a sub-category, skin tone and style
  // from those words alone — what it has to go on for a test-split emoji, whose name it never saw.
  double name_dropout = 0;
  // Draw every base emoji equally often (LatentSet::base_weights) instead of every image: people
  // and hands come in up to 26 skin-tone variants, so drawing images gives them 60 % of the
  // batches though they are 20 % of the emoji, and an object is seen a fifth as often as a face.
  bool balance_bases = false;
  // Where the text encoder and UNet train (a CUDA GPU: the stage's compute in minutes). The
  // random draws stay on the CPU, so a run's batches, timesteps and noise are the same on every
  // device and a checkpoint resumes on any of them.
  torch::Device device = torch::kCPU;
};
// The min-SNR-γ weights min(SNR, γ) / SNR, SNR = ᾱ / (1 − ᾱ), of cumulative alphas ᾱ (any shape).
torch::Tensor min_snr_weights(const torch::Tensor& alphas_cumprod, double gamma);
// Offset noise's constants: [batch, channels, 1, 1] of standard deviation `offset`, drawn from
// `gen`, to add to the training noise ε.
torch::Tensor offset_noise(int64_t batch, int64_t channels, double offset, at::Generator& gen);
// Called every `monitor_every` steps with the step and the model holding the EMA weights (VAE
// and tokenizer shared with the trained model), e.g. to track the train/test loss gap.
using DiffusionMonitor = std::function<void(int64_t step, model::StableDiffusion& ema)>;
struct LatentSet {
  torch::Tensor mean, std;  // unscaled posterior, [N, 4, h, w]
  torch::Tensor ids;        // [N, 77] token ids
  // With mirrors only: the posterior of each image mirrored left to right, and which items
  // may be mirrored (bool [N], EmojiItem::mirrorable).
  torch::Tensor mirrored_mean, mirrored_std, mirrorable;
  torch::Tensor nameless_ids;  // [N, 77] the captions without the emoji's name (name dropout)
  torch::Tensor base_weights;  // [N] 1 / (items of the same base emoji): each base's sum is 1
};
// The items of one training batch, int64 [batch]: uniform over the items, or with
// `balance_bases` uniform over the base emoji and then over that base's items.
torch::Tensor draw_items(const LatentSet& latents, int64_t batch, bool balance_bases,
                         at::Generator& gen);
LatentSet encode_latents(model::AutoencoderKL& vae, const EmojiSet& data,
                         const model::ClipTokenizer& tokenizer, int64_t max_length,
                         bool mirrors = false);

// Trains text encoder + UNet jointly (ε-prediction, SD's schedule) on scaled latents; `model`
// holds the VAE (with its scaling factor set) and receives the EMA weights, back on the device
// its networks came on.
void train_diffusion(model::StableDiffusion& model, const LatentSet& latents,
                     const DiffusionOptions& options, const std::string& run_dir,
                     const StepReport& report = {}, const DiffusionMonitor& monitor = {});

// Mean ε-prediction loss over a latent set for comparing splits: every latent at the same
// `levels` evenly spaced timesteps (so both splits see the same t, and the t-to-t spread of the
// loss does not enter the comparison), with seeded noise; on the device of the model's UNet.
double denoising_loss(model::StableDiffusion& model, const LatentSet& latents, uint64_t seed,
                      int64_t levels = 10, int64_t batch = 64);

}  // namespace p2l::train
