#include "p2l/operators/inpainting.h"

#include <filesystem>

#include "p2l/error.h"
#include "p2l/io/json_file.h"
#include "p2l/io/image.h"
#include "p2l/io/safetensors.h"

namespace p2l::operators {
namespace {

torch::Tensor as_mask(const torch::Tensor& mask, const std::string& who) {
  if (!mask.defined()) throw Error(who + ": undefined mask");
  auto m = mask.detach().to(torch::kCPU);
  while (m.dim() > 2 && m.size(0) == 1) m = m.squeeze(0);
  if (m.dim() != 2)
    throw Error(who + ": a mask must be [H, W] (one value per pixel), got shape " +
                c10::str(mask.sizes()));
  m = m.to(torch::kDouble).contiguous();
  if (!torch::isfinite(m).all().item<bool>()) throw Error(who + ": mask has NaN or Inf values");
  return m;
}

}  // namespace

Inpainting::Inpainting(const torch::Tensor& mask, std::string source)
    : mask_(as_mask(mask, "inpainting")), source_(std::move(source)) {}

std::unique_ptr<Inpainting> Inpainting::from_file(const std::string& path) {
  const std::string who = "mask file '" + path + "'";
  if (!std::filesystem::exists(path)) throw Error(who + ": no such file");
  if (std::filesystem::path(path).extension() == ".safetensors") {
    io::SafeTensorsFile file(path);
    std::string name = "mask";
    if (!file.contains(name)) {
      if (file.tensors().size() != 1)
        throw Error(who + ": expected a tensor named 'mask' or a single tensor");
      name = file.tensors().front().name;
    }
    return std::make_unique<Inpainting>(as_mask(file.load(name), who), path);
  }
  // Grey level of the composited image: white (and transparent) = observed.
  auto unit = io::to_unit(io::load_image(path)).mean(1).squeeze(0);
  return std::make_unique<Inpainting>((unit >= 0.5).to(torch::kDouble), path);
}

void Inpainting::check_size(const std::vector<int64_t>& shape, const std::string& who) const {
  if (shape.size() != 4) throw Error(who + ": expected a [B, C, H, W] shape");
  if (shape[2] != height() || shape[3] != width())
    throw Error(who + ": the mask is " + size_text(height(), width()) + " but the image is " +
                size_text(shape[2], shape[3]));
}

std::vector<int64_t> Inpainting::output_shape(const std::vector<int64_t>& input_shape) const {
  check_size(input_shape, kind());
  return input_shape;
}

torch::Tensor Inpainting::mask_like(const torch::Tensor& like) const {
  return masks_.get(0, like, [&] { return mask_; }).view({1, 1, height(), width()});
}

torch::Tensor Inpainting::forward(const torch::Tensor& x) const {
  check_image_tensor(x, kind());
  check_size(x.sizes().vec(), kind());
  return x * mask_like(x);
}

torch::Tensor Inpainting::solve_regularized(const torch::Tensor& b, double lambda,
                                            const torch::Tensor&, int64_t, double) const {
  if (!(lambda > 0)) throw Error(kind() + ": solve_regularized needs lambda > 0");
  check_image_tensor(b, kind() + " solve_regularized");
  check_size(b.sizes().vec(), kind());
  auto m = mask_like(b);
  return b / (m * m + lambda);
}

nlohmann::json Inpainting::to_json() const {
  return {{"kind", kind()},
          {"height", height()},
          {"width", width()},
          {"source", source_},
          {"mask_tensor", "mask"}};
}

torch::Tensor Inpainting::mask_from_json(const nlohmann::json& j, const NamedTensors& tensors,
                                         const std::string& who) {
  const auto name = j.at("mask_tensor").get<std::string>();
  const auto found = tensors.find(name);
  if (found == tensors.end()) throw Error(who + ": mask tensor '" + name + "' is missing");
  auto mask = as_mask(found->second, who);
  if (j.contains("height") && j.contains("width")) {
    const auto h = io::json_to_int(j["height"], who, "height");
    const auto w = io::json_to_int(j["width"], who, "width");
    if (mask.size(0) != h || mask.size(1) != w)
      throw Error(who + ": stored mask is " + size_text(mask.size(0), mask.size(1)) +
                  " but the operator is " + size_text(h, w));
  }
  return mask;
}

std::unique_ptr<Inpainting> Inpainting::from_json(const nlohmann::json& j,
                                                  const NamedTensors& tensors) {
  if (!j.contains("mask_tensor") && j.contains("source"))
    return from_file(j["source"].get<std::string>());
  return std::make_unique<Inpainting>(mask_from_json(j, tensors, "inpainting"),
                                      j.value("source", std::string()));
}

}  // namespace p2l::operators
