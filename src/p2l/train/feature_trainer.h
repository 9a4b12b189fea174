// Training of the FD-emoji network (metrics/emoji_features.h): supervised classification of
// the emoji sub-category on the training split, so that its pooled features describe what an
// emoji image shows. Checkpoints and resumes like the other stages (trainers.h): every step's
// randomness is drawn from (seed, step).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "p2l/metrics/emoji_features.h"
#include "p2l/train/emoji_dataset.h"
#include "p2l/train/trainers.h"

namespace p2l::train {

// The sub-category of a caption "<name>, [<skin tone>,] <sub-category>, <style> style": the
// field before the style. Every entry of the packages' emoji.json has one, and list_emoji turns
// the name's and sub-category's commas into spaces, so the field is unambiguous. Throws
// p2l::Error naming the caption when it has fewer than three fields.
std::string emoji_subcategory(const std::string& caption);

// The sorted distinct sub-categories of a set: the classes.
std::vector<std::string> subcategory_classes(const EmojiSet& data);
// Class index [N] (int64) of every item; -1 for a sub-category outside `classes` (a test-split
// emoji whose sub-category has no training image).
torch::Tensor subcategory_labels(const EmojiSet& data, const std::vector<std::string>& classes);
// The same for captions (e.g. those that samples were drawn for).
torch::Tensor subcategory_labels(const std::vector<std::string>& captions,
                                 const std::vector<std::string>& classes);

struct FeatureOptions : StageOptions {
  // The shipped network's recipe (models/emoji-64/fd_emoji/README.md): ~4 min on one thread.
  FeatureOptions() {
    steps = 1600;
    batch = 64;
    lr = 2e-3;
    warmup = 100;
    ema_decay = 0.995;      // short run: a long EMA would still remember the first steps
    channels_last = false;  // NCHW measured faster for this small network (0.17 vs 0.22 s/step)
  }
  // Each image is shifted by up to this many pixels in x and y (the gap filled white, the
  // images' background). No flips: a mirrored arrow or letter is another emoji.
  int64_t max_shift = 4;
};

// Trains (or resumes) the network in run_dir/features.state on images with labels in
// [0, classes); rows labelled -1 are never drawn. Returns the EMA network in evaluation mode.
metrics::EmojiFeatureNet train_emoji_features(const EmojiSet& data, const torch::Tensor& labels,
                                              int64_t classes, const FeatureOptions& options,
                                              const std::string& run_dir,
                                              const StepReport& report = {});

struct Accuracy {
  double top1 = 0;       // share of the counted images classified correctly
  double top5 = 0;       // share whose class is among the five most likely
  int64_t counted = 0;   // images with a known class
  int64_t excluded = 0;  // images labelled -1
};
// Accuracy on whole, unshifted images.
Accuracy classification_accuracy(metrics::EmojiFeatureNet& net, const EmojiSet& data,
                                 const torch::Tensor& labels, int64_t batch = 128);
// The same for images [N, 3, H, W] in [-1, 1] (e.g. samples).
Accuracy classification_accuracy(metrics::EmojiFeatureNet& net, const torch::Tensor& images,
                                 const torch::Tensor& labels, int64_t batch = 128);

}  // namespace p2l::train
