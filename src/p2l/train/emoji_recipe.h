// The recipe of p2l's small emoji text-to-image model, stage by stage, as `p2l train STAGE` runs
// it: split (held-out base emoji), vae, decoder (fine-tuned on whole images), tokenizer (BPE on
// the training captions), unet (with the text encoder, watched for over-fitting), export (the
// diffusers folder and its test images), report (the model card's figures), features (the
// FD-emoji network), or all of them in order; test-images writes an evaluation set of the test
// split. Each stage writes into the run folder and resumes from its checkpoints when run again.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "p2l/train/feature_trainer.h"
#include "p2l/train/trainers.h"

namespace p2l::train {

struct EmojiRecipe {
  std::string stage;  // one of recipe_stages()
  std::string data = "data/emoji/cache";
  std::string split = "data/emoji/test_split.txt";
  std::string run = "runs/emoji";
  std::string out = "models/emoji-64";
  // The styles trained on: split, vae, decoder, tokenizer, unet (emoji_dataset.h: emoji_styles()).
  std::vector<std::string> styles = {"google", "twitter"};
  // The styles measured on: report, features, the exported and evaluation test images. Google
  // and Twitter, whatever a model is trained on, so every model is compared on the first model's
  // images and the FD-emoji classifier sees the styles it was trained on.
  std::vector<std::string> measure_styles = {"google", "twitter"};
  VaeOptions vae;
  StageOptions decoder;
  DiffusionOptions unet;
  FeatureOptions features;
  int merges = 1500;
  int samples = 12;
  int sample_steps = 50;
  double sample_cfg = 5.0;
  int64_t unet_snapshot = 0;     // export: a monitor snapshot's step instead of the final weights
  int recognition_samples = 48;  // report: samples per split classified by FD-emoji
  std::string fd_emoji;          // report: the FD-emoji network ("" = <out>/fd_emoji)
  // unet, export: a model folder whose autoencoder and tokenizer replace the run folder's.
  std::string autoencoder_from;
  // unet: the text encoder's size, the UNet's cross-attention levels and widths (recorded in
  // <run>/architecture.json for export and resuming).
  int64_t text_width = 64;
  int64_t text_layers = 2;
  std::vector<int> unet_attention = {0, 1, 1};
  std::vector<int64_t> unet_channels = kEmojiUnetChannels;
  int64_t count = 50;      // test-images
  std::string images_out;  // test-images
  // Each stage's result line ("vae: PSNR train … dB, test … dB", the report as JSON, …).
  std::function<void(const std::string&)> on_result;

  // The shipped model's recipe (models/emoji-64/README.md has what it measured and why).
  static EmojiRecipe shipped();
};

// The stages, in the order `all` runs them (test-images is not part of all).
const std::vector<std::string>& recipe_stages();

// Throws p2l::Error for an unknown stage or settings that cannot go together (--autoencoder-from
// outside unet/export, a device other than the CPU outside unet, a UNet width that is not a
// multiple of its group-norm groups).
void check_recipe(const EmojiRecipe& recipe);

// Runs the recipe's stage (every stage for "all"; split only when the split file is missing).
void run_recipe(const EmojiRecipe& recipe);

}  // namespace p2l::train
