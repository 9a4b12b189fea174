// LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
// Metric") as version 0.1 of the `lpips` pip package computes it (SPEC §6):
//
//   d(x, y) = Σ_l mean_{h,w} Σ_c w_{l,c} (x̂_l − ŷ_l)²_{c,h,w}
//
// where x̂_l is the l-th feature map of the backbone, unit-normalised over channels, applied to
// the images after the package's ScalingLayer, and w_l are the non-negative weights of the
// linear head lin{l}.
//
// Weights come from one safetensors file (docs/metrics.md shows how to make it):
//   net.features.{i}.weight / .bias   the backbone's convolutions under torchvision's names
//                                     (alexnet().features or vgg16().features), prefixed `net.`
//   lin{l}.model.1.weight             [1, C_l, 1, 1], the lpips package's heads (l = 0..4)
// Other tensors in the file are ignored.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace p2l::metrics {

enum class LpipsNet { Alex, Vgg };

// "alex" / "vgg", the names the lpips package uses.
std::string lpips_net_name(LpipsNet net);
LpipsNet lpips_net_from_name(const std::string& name);  // throws p2l::Error on another name

class LpipsImpl : public torch::nn::Module {
 public:
  explicit LpipsImpl(LpipsNet net);

  // Distances [N] between image batches [N, 3, H, W] in [-1, 1] (the same shape; [3, H, W] is
  // taken as one image). Differentiable; wrap in torch::NoGradGuard to score.
  torch::Tensor forward(const torch::Tensor& a, const torch::Tensor& b);

  // The backbone's five tapped feature maps (after the ReLUs) of images in [-1, 1], before the
  // unit normalisation.
  std::vector<torch::Tensor> features(const torch::Tensor& images);

  LpipsNet net() const { return net_; }
  // The smallest height and width the backbone accepts: every pooling needs a 3×3 (AlexNet) or
  // 2×2 (VGG) input.
  int64_t min_image_size() const;

 private:
  torch::Tensor prepare(const torch::Tensor& images) const;

  LpipsNet net_;
  torch::nn::Sequential features_{nullptr};  // registered as net.features
  std::vector<int64_t> taps_;                // indices into features_ whose output is tapped
  std::vector<torch::nn::Conv2d> heads_;     // registered as lin{l}.model.1
};
TORCH_MODULE(Lpips);

// Builds the network and loads `path`, in evaluation mode with gradients off for the weights.
// Throws p2l::Error naming the file and the tensor when one is missing or mis-shaped, and when
// the file holds the other backbone.
Lpips load_lpips(const std::string& path, LpipsNet net, torch::Device device = torch::kCPU);

}  // namespace p2l::metrics
