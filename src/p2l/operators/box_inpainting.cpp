#include "p2l/operators/box_inpainting.h"

#include "p2l/error.h"
#include "p2l/io/json_file.h"
#include "p2l/operators/prng.h"

namespace p2l::operators {
namespace {

void check_box(int64_t height, int64_t width, int64_t box_size) {
  if (height < 1 || width < 1)
    throw Error("box inpainting: image size " + size_text(height, width) + " is empty");
  if (box_size < 1)
    throw Error("box inpainting: box size must be ≥ 1, got " + std::to_string(box_size));
  if (box_size > height || box_size > width)
    throw Error("box inpainting: box size " + std::to_string(box_size) +
                " is larger than the image (" + size_text(height, width) + ")");
}

torch::Tensor box_mask(int64_t height, int64_t width, int64_t box_size, int64_t top, int64_t left) {
  check_box(height, width, box_size);
  if (top < 0 || left < 0 || top + box_size > height || left + box_size > width)
    throw Error("box inpainting: a " + std::to_string(box_size) + "-pixel box at (" +
                std::to_string(top) + ", " + std::to_string(left) + ") leaves the " +
                size_text(height, width) + " image");
  auto mask = torch::ones({height, width}, torch::kDouble);
  mask.narrow(0, top, box_size).narrow(1, left, box_size).zero_();
  return mask;
}

}  // namespace

BoxInpainting::BoxInpainting(const torch::Tensor& mask, int64_t box_size, int64_t top, int64_t left)
    : Inpainting(mask), box_size_(box_size), top_(top), left_(left) {}

BoxInpainting::BoxInpainting(int64_t height, int64_t width, int64_t box_size, int64_t top,
                             int64_t left)
    : BoxInpainting(box_mask(height, width, box_size, top, left), box_size, top, left) {}

std::unique_ptr<BoxInpainting> BoxInpainting::random(int64_t height, int64_t width,
                                                     int64_t box_size, int64_t margin,
                                                     uint64_t seed) {
  check_box(height, width, box_size);
  if (margin < 0) throw Error("box inpainting: margin must be ≥ 0, got " + std::to_string(margin));
  const int64_t free_rows = height - 2 * margin - box_size;
  const int64_t free_cols = width - 2 * margin - box_size;
  if (free_rows < 0 || free_cols < 0)
    throw Error("box inpainting: a " + std::to_string(box_size) + "-pixel box with a " +
                std::to_string(margin) + "-pixel margin does not fit in the " +
                size_text(height, width) + " image");
  SplitMix64 rng(derive_seed(seed, "box_position"));
  const auto top = margin + static_cast<int64_t>(rng.below(static_cast<uint64_t>(free_rows) + 1));
  const auto left = margin + static_cast<int64_t>(rng.below(static_cast<uint64_t>(free_cols) + 1));
  auto op = std::make_unique<BoxInpainting>(height, width, box_size, top, left);
  op->placement_ = "random";
  op->margin_ = margin;
  op->seed_ = seed;
  return op;
}

std::unique_ptr<BoxInpainting> BoxInpainting::centered(int64_t height, int64_t width,
                                                       int64_t box_size) {
  check_box(height, width, box_size);
  auto op = std::make_unique<BoxInpainting>(height, width, box_size, (height - box_size) / 2,
                                            (width - box_size) / 2);
  op->placement_ = "centered";
  return op;
}

nlohmann::json BoxInpainting::to_json() const {
  nlohmann::json j = {{"kind", kind()},          {"height", height()},   {"width", width()},
                      {"box_size", box_size_},   {"top", top_},          {"left", left_},
                      {"placement", placement_}, {"mask_tensor", "mask"}};
  if (placement_ == "random") {
    j["margin"] = margin_;
    j["seed"] = seed_;
  }
  return j;
}

std::unique_ptr<BoxInpainting> BoxInpainting::from_json(const nlohmann::json& j,
                                                        const NamedTensors& tensors) {
  const auto number = [&](const char* key) {
    return io::json_to_int(j.at(key), "box inpainting", key);
  };
  const auto height = number("height"), width = number("width");
  const auto box_size = number("box_size");
  const auto top = number("top"), left = number("left");
  std::unique_ptr<BoxInpainting> op;
  if (j.contains("mask_tensor")) {
    box_mask(height, width, box_size, top, left);  // validates the geometry
    op.reset(new BoxInpainting(mask_from_json(j, tensors, "box inpainting"), box_size, top, left));
  } else {
    op = std::make_unique<BoxInpainting>(height, width, box_size, top, left);
  }
  op->placement_ = j.value("placement", std::string("given"));
  op->margin_ = io::json_int(j, "margin", 0, "box inpainting");
  op->seed_ = j.contains("seed") ? io::json_to_uint(j["seed"], "box inpainting", "seed") : 0;
  return op;
}

}  // namespace p2l::operators
