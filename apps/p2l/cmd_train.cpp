// `p2l train STAGE`: builds p2l's small emoji text-to-image model from the npm emoji packages.
// Stages: split, vae, decoder, tokenizer, unet, export, report, features (the FD-emoji network)
// — or `all` for every stage in order; test-images writes an evaluation set of the test split.
// The recipe is train::run_recipe (p2l/train/emoji_recipe.h); this file parses its flags.
#include <iostream>

#include "commands.h"
#include "p2l/error.h"
#include "p2l/train/emoji_recipe.h"

namespace p2l::cli {

namespace {

std::vector<std::string> stage_choices() {
  auto choices = train::recipe_stages();
  choices.push_back("all");
  choices.push_back("test-images");
  return choices;
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train p2l's small emoji latent diffusion model");
  auto a = std::make_shared<train::EmojiRecipe>(train::EmojiRecipe::shipped());
  cmd->add_option("stage", a->stage,
                  "split | vae | decoder | tokenizer | unet | export | report | features | all | "
                  "test-images (an evaluation set from the test split, not part of all)")
      ->required()
      ->check(CLI::IsMember(stage_choices()));
  cmd->add_option("--data", a->data, "Folder with the emoji npm packages (scripts/fetch_emoji.sh)");
  cmd->add_option("--split", a->split, "Test split file (base emoji codes)");
  cmd->add_option("--styles", a->styles,
                  "Emoji styles to train on: google, twitter, noto-v1, fxemoji, emojione, "
                  "streamline (the last four rendered by scripts/fetch_emoji.sh)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--measure-styles", a->measure_styles,
                  "Emoji styles the report, the FD-emoji network and the test images use")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--run", a->run, "Run folder: checkpoints and stage outputs");
  cmd->add_option("--out", a->out, "Exported model folder (diffusers layout)");
  cmd->add_option("--vae-steps", a->vae.steps, "VAE training steps")->check(CLI::PositiveNumber);
  cmd->add_option("--vae-batch", a->vae.batch, "VAE batch size")->check(CLI::PositiveNumber);
  cmd->add_option("--vae-lr", a->vae.lr, "VAE learning rate")->check(CLI::PositiveNumber);
  cmd->add_option("--vae-crop", a->vae.crop, "VAE training crop size (0 = whole images)");
  cmd->add_option("--vae-whole-fraction", a->vae.whole_image_fraction,
                  "Share of the VAE steps (the last ones) on whole images instead of crops")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--decoder-steps", a->decoder.steps,
                  "Decoder fine-tuning steps (whole images, encoder frozen)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--decoder-lr", a->decoder.lr, "Decoder fine-tuning learning rate")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--unet-steps", a->unet.steps, "UNet steps")->check(CLI::PositiveNumber);
  cmd->add_option("--unet-batch", a->unet.batch, "UNet batch size")->check(CLI::PositiveNumber);
  cmd->add_option("--unet-lr", a->unet.lr, "UNet learning rate")->check(CLI::PositiveNumber);
  cmd->add_option("--unet-schedule-steps", a->unet.schedule_steps,
                  "Length of the UNet's cosine learning-rate schedule (0 = --unet-steps)")
      ->check(non_negative());
  cmd->add_option("--unet-dropout", a->unet.dropout, "UNet residual-block dropout")
      ->check(CLI::Range(0.0, 0.9));
  cmd->add_flag("--unet-mirror", a->unet.mirror,
                "Mirror augmentation: half of the mirrorable images (no symbols, flags, clocks, "
                "directions) drawn left-right flipped");
  cmd->add_option("--unet-snr-gamma", a->unet.snr_gamma,
                  "Min-SNR-γ loss weighting (0 = plain ε-MSE)")
      ->check(non_negative());
  cmd->add_option("--unet-noise-offset", a->unet.noise_offset,
                  "Offset noise: std of a per-channel constant added to the training noise "
                  "(0 = off; lets the caption, not the seed, set a sample's colour)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--unet-name-dropout", a->unet.name_dropout,
                  "Share of the captions trained without the emoji's name (sub-category, skin "
                  "tone and style only; 0 = off)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("--unet-balance-bases", a->unet.balance_bases,
                "Draw every base emoji equally often, not every image (skin-tone variants "
                "make people and hands 60 % of the images, 20 % of the emoji)");
  cmd->add_option("--autoencoder-from", a->autoencoder_from,
                  "unet, export: take the autoencoder and tokenizer of this model folder instead "
                  "of the run folder's");
  auto* text_width = cmd->add_option("--text-width", a->text_width,
                                     "unet: text encoder width (4 heads; export takes the run's)")
                         ->check(CLI::PositiveNumber);
  auto* text_layers = cmd->add_option("--text-layers", a->text_layers,
                                      "unet: text encoder layers (export takes the run's)")
                          ->check(CLI::PositiveNumber);
  auto* unet_attention =
      cmd->add_option(
             "--unet-attention", a->unet_attention,
             "unet: cross-attention (1) or none (0) at each UNet level, from the 16×16 one "
             "down (export takes the run's)")
          ->delimiter(',')
          ->expected(3)
          ->capture_default_str()
          ->check(CLI::IsMember({0, 1}));
  auto* unet_channels =
      cmd->add_option("--unet-channels", a->unet_channels,
                      "unet: each UNet level's width, from the 16×16 one down, multiples of 32 "
                      "(export takes the run's)")
          ->delimiter(',')
          ->expected(3)
          ->capture_default_str()
          ->check(CLI::PositiveNumber);
  cmd->add_option("--recognition-samples", a->recognition_samples,
                  "Samples per split classified by FD-emoji (report; 0 = none)")
      ->check(non_negative());
  cmd->add_option("--fd-emoji", a->fd_emoji,
                  "FD-emoji network for the report's recognition (default <out>/fd_emoji)");
  auto device = std::make_shared<std::string>("cpu");
  cmd->add_option("--device", *device,
                  "unet: where the text encoder and UNet train (cpu, cuda or cuda:N); the other "
                  "stages train on the CPU")
      ->capture_default_str();
  cmd->add_option("--monitor-every", a->unet.monitor_every,
                  "UNet steps between train/test loss checks and EMA snapshots (0 = none)")
      ->check(non_negative());
  cmd->add_option("--features-steps", a->features.steps, "FD-emoji network training steps")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--features-batch", a->features.batch, "FD-emoji network batch size")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--features-lr", a->features.lr, "FD-emoji network learning rate")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--merges", a->merges, "BPE merges")->check(CLI::PositiveNumber);
  cmd->add_option("--checkpoint-every", a->vae.checkpoint_every, "Steps between checkpoints")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--samples", a->samples, "Sample grid size (report)");
  cmd->add_option("--sample-cfg", a->sample_cfg, "Sample grid guidance scale (report)")
      ->check(non_negative());
  cmd->add_option(
         "--unet-snapshot", a->unet_snapshot,
         "Export the UNet and text encoder of this step's monitor snapshot (early stopping)")
      ->check(non_negative());
  cmd->add_option("--count", a->count, "Images (test-images): base emoji of the test split")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--images-out", a->images_out, "Output folder (test-images)");
  cmd->add_flag(
      "--no-channels-last",
      [a](int64_t) {
        a->vae.channels_last = a->decoder.channels_last = a->unet.channels_last = false;
      },
      "Keep the default NCHW layout (for comparison)");
  cmd->add_flag(
      "--no-resume",
      [a](int64_t) {
        a->vae.resume = a->decoder.resume = a->unet.resume = a->features.resume = false;
      },
      "Start over instead of resuming from the run folder's checkpoints");
  cmd->callback([a, device, text_width, text_layers, unet_attention, unet_channels] {
    a->unet.device = parse_device(*device);
    a->unet.checkpoint_every = a->decoder.checkpoint_every = a->features.checkpoint_every =
        a->vae.checkpoint_every;
    if ((text_width->count() || text_layers->count() || unet_attention->count() ||
         unet_channels->count()) &&
        a->stage != "unet" && a->stage != "all")
      throw Error("train " + a->stage +
                  ": --text-width, --text-layers, --unet-attention and "
                  "--unet-channels are for the unet stage (export takes the run folder's)");
    a->on_result = [](const std::string& line) { std::cout << line << "\n" << std::flush; };
    train::run_recipe(*a);
  });
}

}  // namespace p2l::cli
