#include "p2l/io/image.h"

#include <cstdio>
#include <filesystem>
#include <memory>

#include "p2l/error.h"

// stb (Debian's libstb-dev) supplies the decoders and the PNG encoder; compiled here once.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_NO_HDR
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace p2l::io {

torch::Tensor load_image(const std::string& path) {
  if (!std::filesystem::exists(path)) throw Error(path + ": no such image file");
  int w = 0, h = 0, channels = 0;
  std::unique_ptr<unsigned char, decltype(&stbi_image_free)> data(
      stbi_load(path.c_str(), &w, &h, &channels, 4), &stbi_image_free);
  if (!data) throw Error(path + ": cannot decode image (" + stbi_failure_reason() + ")");
  auto rgba = torch::from_blob(data.get(), {h, w, 4}, torch::kUInt8).to(torch::kFloat) / 255.0;
  auto rgb = rgba.slice(2, 0, 3);
  auto alpha = rgba.slice(2, 3, 4);
  // Transparent pixels become white (emoji and icons are drawn on transparency).
  auto unit = rgb * alpha + (1 - alpha);
  return to_signed(unit.permute({2, 0, 1}).unsqueeze(0).contiguous());
}

torch::Tensor load_image_gray8(const std::string& path) {
  if (!std::filesystem::exists(path)) throw Error(path + ": no such image file");
  int w = 0, h = 0, channels = 0;
  std::unique_ptr<unsigned char, decltype(&stbi_image_free)> data(
      stbi_load(path.c_str(), &w, &h, &channels, 1), &stbi_image_free);
  if (!data) throw Error(path + ": cannot decode image (" + stbi_failure_reason() + ")");
  return torch::from_blob(data.get(), {h, w}, torch::kUInt8).clone();
}

void save_png(const std::string& path, const torch::Tensor& image) {
  auto img = image.detach().to(torch::kCPU, torch::kFloat);
  if (img.dim() == 4) {
    if (img.size(0) != 1) throw Error(path + ": can only write one image per PNG");
    img = img.squeeze(0);
  }
  if (img.dim() != 3 || (img.size(0) != 3 && img.size(0) != 1))
    throw Error(path + ": expected a [3, H, W] image tensor, got " + c10::str(image.sizes()));
  auto bytes = (to_unit(img).clamp(0, 1) * 255).round().to(torch::kUInt8).permute({1, 2, 0})
                   .contiguous();
  const int h = static_cast<int>(bytes.size(0)), w = static_cast<int>(bytes.size(1));
  const int c = static_cast<int>(bytes.size(2));
  const std::string tmp = path + ".tmp.png";
  if (!stbi_write_png(tmp.c_str(), w, h, c, bytes.data_ptr<uint8_t>(), w * c)) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write PNG");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write PNG (" + ec.message() + ")");
  }
}

}  // namespace p2l::io
