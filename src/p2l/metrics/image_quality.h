// Full-reference image quality (SPEC §6) on images in p2l's [-1, 1] convention: both images are
// mapped to [0, 1] (x/2 + 0.5) and clamped, so the data range is 1.
#pragma once

#include <torch/torch.h>

namespace p2l::metrics {

// 10·log10(1 / MSE) over all pixels and channels of [1, C, H, W] (or [C, H, W]) images; +∞ for
// identical images.
double psnr(const torch::Tensor& a, const torch::Tensor& b);

// SSIM of Wang et al. (2004): 11×11 Gaussian window (σ 1.5), K1 = 0.01, K2 = 0.03, computed per
// channel over the "valid" positions (no padding) and averaged over positions and channels.
// Images smaller than the window use a window of the image's size.
double ssim(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace p2l::metrics
