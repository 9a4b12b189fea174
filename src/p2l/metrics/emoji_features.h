// The network behind FD-emoji: a small CNN that p2l trains (`p2l train features`) to classify
// the emoji sub-category ("face smiling", "country flag", … as the captions spell them) on the
// emoji training split. Its globally pooled last-stage activations are image features for a Fréchet
// distance between image sets of the emoji domain, where FID's Inception (ImageNet photographs,
// 299×299) is neither available nor a good fit. The distance is named FD-emoji, never FID: its
// values are only comparable with each other when computed with the same weights (docs/metrics.md).
//
// Weights: one safetensors file under the registered names
//   stages.{0..3}.conv.{weight,bias}, stages.{0..3}.norm.{weight,bias}, classifier.{weight,bias}
// The number of classes is read from classifier.weight ([classes, kFeatures]).
#pragma once

#include <torch/torch.h>

#include <array>
#include <string>

namespace p2l::metrics {

// One downsampling stage: 3×3 convolution with stride 2, GroupNorm, SiLU.
class EmojiFeatureStageImpl : public torch::nn::Module {
 public:
  EmojiFeatureStageImpl(int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d conv_{nullptr};
  torch::nn::GroupNorm norm_{nullptr};
};
TORCH_MODULE(EmojiFeatureStage);

class EmojiFeatureNetImpl : public torch::nn::Module {
 public:
  // The emoji images' own size; other sizes are resized to it (bilinear).
  static constexpr int64_t kInputSize = 64;
  // Channels of the four stages: 64 → 32 → 16 → 8 → 4 pixels.
  static constexpr std::array<int64_t, 4> kChannels = {32, 64, 128, 128};
  static constexpr int64_t kFeatures = 128;  // = the last stage's channels
  // Channels per GroupNorm group are kChannels / kGroups (4 at the first stage).
  static constexpr int64_t kGroups = 8;

  explicit EmojiFeatureNetImpl(int64_t classes);

  int64_t classes() const { return classes_; }
  // Features [N, kFeatures] of images [N, 3, H, W] (or [3, H, W]) in [-1, 1], any size: the
  // global average of the last stage's activations. Throws p2l::Error for other shapes.
  torch::Tensor features(const torch::Tensor& images);
  // Class logits [N, classes] (training and accuracy).
  torch::Tensor forward(const torch::Tensor& images);
  torch::Tensor classify(const torch::Tensor& features);

 private:
  int64_t classes_;
  torch::nn::ModuleList stages_;
  torch::nn::Linear classifier_{nullptr};
};
TORCH_MODULE(EmojiFeatureNet);

// Builds the network from `path`, a safetensors file or a folder holding model.safetensors (as
// models/emoji-64/fd_emoji/), in evaluation mode with gradients off. Throws p2l::Error naming
// the file and the missing, mis-shaped or unreadable tensor.
EmojiFeatureNet load_emoji_feature_net(const std::string& path, torch::Device device = torch::kCPU);

}  // namespace p2l::metrics
