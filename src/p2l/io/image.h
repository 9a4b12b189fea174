// Image files ↔ tensors. Images are float [1, 3, H, W] tensors in [-1, 1] (SPEC §2).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace p2l::io {

// The most pixels (width × height) an image file may claim: 2^26 = 8192², which holds the
// largest camera photos (60 MP) and is 64 times SD's 1024² working size. One such image is
// already 0.8 GB as a float tensor; a header claiming more is a mistake or an attack, and it is
// refused before anything of its size is allocated.
constexpr int64_t kDefaultMaxImagePixels = int64_t{1} << 26;

// kDefaultMaxImagePixels, or the environment variable P2L_MAX_IMAGE_PIXELS when set (a positive
// whole number). Throws p2l::Error when the variable is not one.
int64_t max_image_pixels();

// PNG and JPEG only, recognised by their first bytes (not the file name), decoded by libpng and
// libjpeg-turbo. RGBA is composited on white, grayscale is expanded to RGB, 16-bit PNGs keep the
// high byte of each sample; EXIF orientation is not applied. Throws p2l::Error naming the file
// when it is another format, when its header claims more than max_image_pixels(), or when it
// cannot be decoded (damaged or truncated data).
torch::Tensor load_image(const std::string& path);

// The 8-bit grey levels of an image as a uint8 [H, W] tensor, exactly as stored (colour is
// reduced to the integer luma (77 r + 150 g + 29 b) >> 8, alpha is ignored): for kernels and
// masks saved as images. Same formats, limit and errors as load_image.
torch::Tensor load_image_gray8(const std::string& path);

// Writes a PNG from a [1, 3, H, W] or [3, H, W] tensor in [-1, 1] (clamped, rounded to 8 bits).
// Written to a temporary name and renamed, so a failure never leaves a partial file.
void save_png(const std::string& path, const torch::Tensor& image);

// [0, 1] ↔ [-1, 1].
inline torch::Tensor to_signed(const torch::Tensor& unit) { return unit * 2 - 1; }
inline torch::Tensor to_unit(const torch::Tensor& image) { return (image + 1) / 2; }

}  // namespace p2l::io
