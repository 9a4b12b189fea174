#include "p2l/metrics/emoji_features.h"

#include <filesystem>

#include "p2l/error.h"
#include "p2l/io/safetensors.h"
#include "p2l/metrics/frozen_weights.h"

namespace p2l::metrics {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

namespace {

// The file a folder stands for (models/emoji-64/fd_emoji/ holds it beside config.json).
constexpr const char* kWeightsFile = "model.safetensors";
// The tensor whose shape gives the number of classes.
constexpr const char* kClassifierWeight = "classifier.weight";

}  // namespace

EmojiFeatureStageImpl::EmojiFeatureStageImpl(int64_t in, int64_t out) {
  conv_ = register_module("conv", nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(2).padding(1)));
  norm_ = register_module("norm",
                          nn::GroupNorm(nn::GroupNormOptions(EmojiFeatureNetImpl::kGroups, out)));
}

torch::Tensor EmojiFeatureStageImpl::forward(const torch::Tensor& x) {
  return torch::silu(norm_(conv_(x)));
}

EmojiFeatureNetImpl::EmojiFeatureNetImpl(int64_t classes) : classes_(classes) {
  if (classes < 2)
    throw Error("FD-emoji network: needs at least 2 classes, got " + std::to_string(classes));
  int64_t in = 3;
  for (int64_t out : kChannels) {
    stages_->push_back(EmojiFeatureStage(in, out));
    in = out;
  }
  register_module("stages", stages_);
  classifier_ = register_module("classifier", nn::Linear(kFeatures, classes));
}

torch::Tensor EmojiFeatureNetImpl::features(const torch::Tensor& images) {
  auto x = images.dim() == 3 ? images.unsqueeze(0) : images;
  if (x.dim() != 4 || x.size(1) != 3)
    throw Error("FD-emoji network: expected [N, 3, H, W] images, got " + c10::str(images.sizes()));
  const auto weight = classifier_->weight;
  x = x.to(weight.device(), weight.scalar_type());
  if (x.size(2) != kInputSize || x.size(3) != kInputSize)
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{kInputSize, kInputSize})
                              .mode(torch::kBilinear)
                              .align_corners(false));
  for (const auto& stage : *stages_) x = stage->as<EmojiFeatureStage>()->forward(x);
  return x.mean({2, 3});
}

torch::Tensor EmojiFeatureNetImpl::classify(const torch::Tensor& features) {
  return classifier_(features);
}

torch::Tensor EmojiFeatureNetImpl::forward(const torch::Tensor& images) {
  return classify(features(images));
}

EmojiFeatureNet load_emoji_feature_net(const std::string& path, torch::Device device) {
  const auto file_path = std::filesystem::is_directory(path)
                             ? (std::filesystem::path(path) / kWeightsFile).string()
                             : path;
  if (!std::filesystem::exists(file_path))
    throw Error(file_path +
                ": no such file (the FD-emoji network's weights, e.g. "
                "models/emoji-64/fd_emoji)");
  const io::SafeTensorsFile file(file_path);
  if (!file.contains(kClassifierWeight))
    throw Error(file_path + ": missing tensor " + kClassifierWeight +
                " (not an FD-emoji network's weights)");
  const auto& shape = file.info(kClassifierWeight).shape;
  if (shape.size() != 2 || shape[1] != EmojiFeatureNetImpl::kFeatures)
    throw Error(file_path + ": tensor '" + kClassifierWeight + "' has shape " + c10::str(shape) +
                ", expected [classes, " + std::to_string(EmojiFeatureNetImpl::kFeatures) + "]");
  EmojiFeatureNet net(shape[0]);
  load_frozen(*net, file, device, "the FD-emoji network");
  return net;
}

}  // namespace p2l::metrics
