#include "p2l/metrics/lpips.h"

#include "p2l/error.h"
#include "p2l/io/safetensors.h"
#include "p2l/metrics/frozen_weights.h"
#include "p2l/model/layers.h"

namespace p2l::metrics {

namespace nn = torch::nn;

namespace {

// The lpips package's ScalingLayer: maps [-1, 1] images to the ImageNet statistics the
// backbones were trained on ((x − shift) / scale per RGB channel).
constexpr double kScalingShift[3] = {-0.030, -0.088, -0.188};
constexpr double kScalingScale[3] = {0.458, 0.448, 0.450};
// normalize_tensor's epsilon in the lpips package: added to the channel norm, not under the root.
constexpr double kUnitNormEps = 1e-10;
// First-convolution kernel size, which tells the two backbones' files apart.
constexpr int64_t kAlexFirstKernel = 11, kVggFirstKernel = 3;

// Holders give parameters their names in the file (net.features.N, lin{l}.model.1).
using model::conv;
using model::Holder;

// torchvision's alexnet().features up to the last ReLU (index 11); the final max-pool has no
// weights and is never tapped. Taps: the ReLUs after each convolution.
nn::Sequential alex_features(std::vector<int64_t>& taps) {
  nn::Sequential f;
  f->push_back(conv(3, 64, kAlexFirstKernel, 4, 2));  // 0
  f->push_back(nn::ReLU());                           // 1
  f->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2)));
  f->push_back(conv(64, 192, 5, 1, 2));  // 3
  f->push_back(nn::ReLU());              // 4
  f->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2)));
  f->push_back(conv(192, 384, 3, 1, 1));  // 6
  f->push_back(nn::ReLU());               // 7
  f->push_back(conv(384, 256, 3, 1, 1));  // 8
  f->push_back(nn::ReLU());               // 9
  f->push_back(conv(256, 256, 3, 1, 1));  // 10
  f->push_back(nn::ReLU());               // 11
  taps = {1, 4, 7, 9, 11};
  return f;
}

// torchvision's vgg16().features (configuration "D") up to relu5_3 (index 29). Taps: relu1_2,
// relu2_2, relu3_3, relu4_3, relu5_3, the last ReLU before each pooling.
nn::Sequential vgg_features(std::vector<int64_t>& taps) {
  constexpr int64_t kPool = 0;
  const std::vector<int64_t> plan = {64,    64,  kPool, 128, 128,   kPool, 256, 256, 256,
                                     kPool, 512, 512,   512, kPool, 512,   512, 512};
  nn::Sequential f;
  int64_t in = 3;
  taps.clear();
  for (const int64_t channels : plan) {
    if (channels == kPool) {
      taps.push_back(static_cast<int64_t>(f->size()) - 1);
      f->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2).stride(2)));
      continue;
    }
    f->push_back(conv(in, channels, kVggFirstKernel, 1, 1));
    f->push_back(nn::ReLU());
    in = channels;
  }
  taps.push_back(static_cast<int64_t>(f->size()) - 1);
  return f;
}

}  // namespace

std::string lpips_net_name(LpipsNet net) { return net == LpipsNet::Alex ? "alex" : "vgg"; }

LpipsNet lpips_net_from_name(const std::string& name) {
  if (name == "alex") return LpipsNet::Alex;
  if (name == "vgg") return LpipsNet::Vgg;
  throw Error("unknown LPIPS network '" + name + "' (expected alex or vgg)");
}

LpipsImpl::LpipsImpl(LpipsNet net) : net_(net) {
  auto backbone = register_module("net", std::make_shared<Holder>());
  features_ = backbone->register_module(
      "features", net == LpipsNet::Alex ? alex_features(taps_) : vgg_features(taps_));
  const std::vector<int64_t> channels = net == LpipsNet::Alex
                                            ? std::vector<int64_t>{64, 192, 384, 256, 256}
                                            : std::vector<int64_t>{64, 128, 256, 512, 512};
  for (size_t l = 0; l < channels.size(); ++l) {
    // The package's NetLinLayer is Sequential(Dropout, Conv2d): index 0 (the dropout, inactive
    // when scoring) has no weights, so only model.1 exists.
    auto lin = register_module("lin" + std::to_string(l), std::make_shared<Holder>());
    auto model = lin->register_module("model", std::make_shared<Holder>());
    heads_.push_back(
        model->register_module("1", nn::Conv2d(nn::Conv2dOptions(channels[l], 1, 1).bias(false))));
  }
}

int64_t LpipsImpl::min_image_size() const {
  // AlexNet: conv 11/4 (pad 2) then two 3/2 poolings need ⌊(H − 7)/4⌋ + 1 ≥ 7, so H ≥ 31.
  // VGG16: four 2/2 poolings before relu5_3, so H ≥ 16.
  return net_ == LpipsNet::Alex ? 31 : 16;
}

torch::Tensor LpipsImpl::prepare(const torch::Tensor& images) const {
  auto x = images.dim() == 3 ? images.unsqueeze(0) : images;
  if (x.dim() != 4 || x.size(1) != 3)
    throw Error("LPIPS: expected [N, 3, H, W] images, got " + c10::str(images.sizes()));
  if (x.size(2) < min_image_size() || x.size(3) < min_image_size())
    throw Error("LPIPS (" + lpips_net_name(net_) + "): images must be at least " +
                std::to_string(min_image_size()) + "×" + std::to_string(min_image_size()) +
                ", got " + std::to_string(x.size(2)) + "×" + std::to_string(x.size(3)));
  const auto& weight = heads_.front()->weight;
  return x.to(weight.device(), weight.scalar_type());
}

std::vector<torch::Tensor> LpipsImpl::features(const torch::Tensor& images) {
  auto x = prepare(images);
  const auto opts = x.options();
  const auto shift = torch::tensor({kScalingShift[0], kScalingShift[1], kScalingShift[2]}, opts);
  const auto scale = torch::tensor({kScalingScale[0], kScalingScale[1], kScalingScale[2]}, opts);
  x = (x - shift.view({1, 3, 1, 1})) / scale.view({1, 3, 1, 1});
  std::vector<torch::Tensor> taps;
  size_t next = 0;
  int64_t index = 0;
  for (auto& layer : *features_) {
    x = layer.forward(x);
    if (next < taps_.size() && index == taps_[next]) {
      taps.push_back(x);
      ++next;
    }
    ++index;
  }
  return taps;
}

torch::Tensor LpipsImpl::forward(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes())
    throw Error("LPIPS: images differ in shape: " + c10::str(a.sizes()) + " vs " +
                c10::str(b.sizes()));
  // Each batch goes through the backbone on its own, as the package does: identical inputs then
  // give bit-identical features and a distance of exactly 0.
  const auto fa = features(a), fb = features(b);
  auto unit = [](const torch::Tensor& f) {
    return f / (f.pow(2).sum(1, /*keepdim=*/true).sqrt() + kUnitNormEps);
  };
  torch::Tensor distance;
  for (size_t l = 0; l < fa.size(); ++l) {
    auto layer = heads_[l]((unit(fa[l]) - unit(fb[l])).pow(2)).mean({1, 2, 3});
    distance = l == 0 ? layer : distance + layer;
  }
  return distance;
}

Lpips load_lpips(const std::string& path, LpipsNet net, torch::Device device) {
  const io::SafeTensorsFile file(path);
  // A file of the other backbone would fail on its first convolution's shape; say why instead.
  const std::string first = "net.features.0.weight";
  if (file.contains(first) && file.info(first).shape.size() == 4) {
    const int64_t kernel = file.info(first).shape[2];
    const int64_t expected = net == LpipsNet::Alex ? kAlexFirstKernel : kVggFirstKernel;
    const int64_t other = net == LpipsNet::Alex ? kVggFirstKernel : kAlexFirstKernel;
    if (kernel != expected && kernel == other)
      throw Error(path + ": holds LPIPS " + (net == LpipsNet::Alex ? "vgg" : "alex") +
                  " weights (tensor '" + first + "' has " + std::to_string(kernel) + "×" +
                  std::to_string(kernel) + " kernels), not " + lpips_net_name(net));
  }
  Lpips lpips(net);
  load_frozen(*lpips, file, device, "LPIPS (" + lpips_net_name(net) + ")");
  return lpips;
}

}  // namespace p2l::metrics
