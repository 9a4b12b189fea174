#include "p2l/operators/super_resolution.h"

#include "p2l/error.h"
#include "p2l/io/json_file.h"
#include "p2l/operators/resizer.h"

namespace p2l::operators {

SuperResolution::SuperResolution(int64_t factor) : factor_(factor) {
  if (factor < 1)
    throw Error("super-resolution: factor must be ≥ 1, got " + std::to_string(factor));
}

std::vector<int64_t> SuperResolution::output_shape(const std::vector<int64_t>& input_shape) const {
  if (input_shape.size() != 4) throw Error("super-resolution: expected a [B, C, H, W] shape");
  const int64_t h = input_shape[2], w = input_shape[3];
  if (h % factor_ != 0 || w % factor_ != 0)
    throw Error("super-resolution: image size " + std::to_string(h) + "×" + std::to_string(w) +
                " is not divisible by the factor " + std::to_string(factor_));
  return {input_shape[0], input_shape[1], h / factor_, w / factor_};
}

torch::Tensor SuperResolution::matrix(int64_t in_length, const torch::Tensor& like) const {
  // 1/f is what DPS passes; the output length is fixed to n/f so rounding never adds a pixel.
  return matrices_.get(in_length, like, [&] {
    return resizer_matrix(in_length, 1.0 / static_cast<double>(factor_), in_length / factor_);
  });
}

torch::Tensor SuperResolution::forward(const torch::Tensor& x) const {
  check_image_tensor(x, "super-resolution");
  output_shape(x.sizes().vec());
  auto mh = matrix(x.size(2), x);
  auto mw = matrix(x.size(3), x);
  return torch::matmul(torch::matmul(mh, x), mw.t());
}

torch::Tensor SuperResolution::adjoint(const torch::Tensor& y) const {
  check_image_tensor(y, "super-resolution adjoint");
  auto mh = matrix(y.size(2) * factor_, y);
  auto mw = matrix(y.size(3) * factor_, y);
  return torch::matmul(torch::matmul(mh.t(), y), mw);
}

nlohmann::json SuperResolution::to_json() const { return {{"kind", kind()}, {"factor", factor_}}; }

std::unique_ptr<SuperResolution> SuperResolution::from_json(const nlohmann::json& j) {
  return std::make_unique<SuperResolution>(
      io::json_to_int(j.at("factor"), "super-resolution", "factor"));
}

}  // namespace p2l::operators
