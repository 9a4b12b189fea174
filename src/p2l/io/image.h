// Image files ↔ tensors. Images are float [1, 3, H, W] tensors in [-1, 1] (SPEC §2).
#pragma once

#include <torch/torch.h>

#include <string>

namespace p2l::io {

// PNG / JPEG / BMP / TGA (anything stb_image reads). RGBA is composited on white, grayscale is
// expanded to RGB. Throws p2l::Error naming the file when it cannot be decoded.
torch::Tensor load_image(const std::string& path);

// The 8-bit grey levels of an image as a uint8 [H, W] tensor, exactly as stored (colour is
// reduced to stb's integer luma, alpha is ignored): for kernels and masks saved as images.
torch::Tensor load_image_gray8(const std::string& path);

// Writes a PNG from a [1, 3, H, W] or [3, H, W] tensor in [-1, 1] (clamped, rounded to 8 bits).
// Written to a temporary name and renamed, so a failure never leaves a partial file.
void save_png(const std::string& path, const torch::Tensor& image);

// [0, 1] ↔ [-1, 1].
inline torch::Tensor to_signed(const torch::Tensor& unit) { return unit * 2 - 1; }
inline torch::Tensor to_unit(const torch::Tensor& image) { return (image + 1) / 2; }

}  // namespace p2l::io
