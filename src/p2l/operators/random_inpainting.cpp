#include "p2l/operators/random_inpainting.h"

#include <cmath>
#include <numeric>
#include <vector>

#include "p2l/error.h"
#include "p2l/io/json_file.h"
#include "p2l/operators/prng.h"

namespace p2l::operators {

torch::Tensor random_pixel_mask(int64_t height, int64_t width, double fraction, uint64_t seed) {
  if (!(fraction >= 0 && fraction <= 1))
    throw Error("random inpainting: the masked fraction must be in [0, 1], got " +
                c10::str(fraction));
  if (height < 1 || width < 1) throw Error("random inpainting: empty image size");
  const int64_t pixels = height * width;
  // The 1e-9 keeps 0.29 · 100 = 28.999… from losing a pixel.
  const auto missing = std::min<int64_t>(
      pixels, static_cast<int64_t>(std::floor(fraction * static_cast<double>(pixels) + 1e-9)));
  std::vector<int64_t> order(pixels);
  std::iota(order.begin(), order.end(), 0);
  SplitMix64 rng(derive_seed(seed, "random_mask"));
  auto mask = torch::ones({pixels}, torch::kDouble);
  auto m = mask.accessor<double, 1>();
  for (int64_t i = 0; i < missing; ++i) {
    const auto j = i + static_cast<int64_t>(rng.below(static_cast<uint64_t>(pixels - i)));
    std::swap(order[i], order[j]);
    m[order[i]] = 0;
  }
  return mask.view({height, width});
}

RandomInpainting::RandomInpainting(int64_t height, int64_t width, double fraction, uint64_t seed)
    : RandomInpainting(random_pixel_mask(height, width, fraction, seed), fraction, seed) {}

RandomInpainting::RandomInpainting(const torch::Tensor& mask, double fraction, uint64_t seed)
    : Inpainting(mask), fraction_(fraction), seed_(seed) {}

nlohmann::json RandomInpainting::to_json() const {
  return {{"kind", kind()},        {"height", height()}, {"width", width()},
          {"fraction", fraction_}, {"seed", seed_},      {"mask_tensor", "mask"}};
}

std::unique_ptr<RandomInpainting> RandomInpainting::from_json(const nlohmann::json& j,
                                                              const NamedTensors& tensors) {
  const auto fraction = j.at("fraction").get<double>();
  const auto seed = io::json_to_uint(j.at("seed"), "random inpainting", "seed");
  if (j.contains("mask_tensor"))
    return std::unique_ptr<RandomInpainting>(
        new RandomInpainting(mask_from_json(j, tensors, "random inpainting"), fraction, seed));
  return std::make_unique<RandomInpainting>(
      io::json_to_int(j.at("height"), "random inpainting", "height"),
      io::json_to_int(j.at("width"), "random inpainting", "width"), fraction, seed);
}

}  // namespace p2l::operators
