#include "p2l/operators/resizer.h"

#include <cmath>
#include <string>

#include "p2l/error.h"

namespace p2l::operators {
namespace {

// Keys' cubic convolution kernel with a = −0.5 (support [−2, 2]).
double keys_cubic(double t) {
  const double a = std::fabs(t), a2 = a * a, a3 = a2 * a;
  if (a <= 1) return 1.5 * a3 - 2.5 * a2 + 1;
  if (a <= 2) return -0.5 * a3 + 2.5 * a2 - 4 * a + 2;
  return 0;
}

// Half-sample symmetric fold (edge pixel repeated): … 1 0 | 0 1 … n−1 | n−1 n−2 …
int64_t fold_half_sample(int64_t j, int64_t n) {
  int64_t r = j % (2 * n);
  if (r < 0) r += 2 * n;
  return r >= n ? 2 * n - 1 - r : r;
}

void check_scale(double scale) {
  if (!(scale > 0) || !std::isfinite(scale))
    throw Error("resizer: scale must be a positive number, got " + c10::str(scale));
}

}  // namespace

int64_t resized_length(int64_t in_length, double scale) {
  check_scale(scale);
  return static_cast<int64_t>(std::ceil(static_cast<double>(in_length) * scale));
}

torch::Tensor resizer_matrix(int64_t in_length, double scale, int64_t out_length) {
  check_scale(scale);
  if (in_length < 1) throw Error("resizer: input length must be ≥ 1");
  if (out_length < 0) out_length = resized_length(in_length, scale);
  if (out_length < 1) throw Error("resizer: output length must be ≥ 1");
  const bool antialias = scale < 1;
  const double stretch = antialias ? scale : 1.0;  // h_s(t) = s·h(s·t) when down-scaling
  const double width = 4.0 / stretch;
  const int64_t taps = static_cast<int64_t>(std::ceil(width)) + 2;
  // Re-centres the output grid when n·s was rounded up, so both image edges stay aligned.
  const double shift = (static_cast<double>(out_length) - in_length * scale) / 2;

  auto matrix = torch::zeros({out_length, in_length}, torch::kDouble);
  auto m = matrix.accessor<double, 2>();
  std::vector<double> weights(taps);
  for (int64_t o = 0; o < out_length; ++o) {
    // Input coordinate of output pixel o (pixel centres, "area" alignment).
    const double centre = (o + 0.5 - shift) / scale - 0.5;
    const int64_t first = static_cast<int64_t>(std::floor(centre - width / 2));
    double total = 0;
    for (int64_t t = 0; t < taps; ++t) {
      weights[t] = stretch * keys_cubic(stretch * (centre - static_cast<double>(first + t)));
      total += weights[t];
    }
    if (total == 0) total = 1;
    for (int64_t t = 0; t < taps; ++t)
      m[o][fold_half_sample(first + t, in_length)] += weights[t] / total;
  }
  return matrix;
}

torch::Tensor resize(const torch::Tensor& x, double scale) {
  if (x.dim() < 2) throw Error("resizer: expected [..., H, W], got " + c10::str(x.sizes()));
  const int64_t h = x.size(-2), w = x.size(-1);
  auto mh = resizer_matrix(h, scale).to(x.device(), x.scalar_type());
  auto mw = resizer_matrix(w, scale).to(x.device(), x.scalar_type());
  return torch::matmul(torch::matmul(mh, x), mw.t());
}

torch::Tensor resize_adjoint(const torch::Tensor& y, double scale, int64_t in_height,
                             int64_t in_width) {
  if (y.dim() < 2) throw Error("resizer: expected [..., h, w], got " + c10::str(y.sizes()));
  auto mh = resizer_matrix(in_height, scale).to(y.device(), y.scalar_type());
  auto mw = resizer_matrix(in_width, scale).to(y.device(), y.scalar_type());
  if (mh.size(0) != y.size(-2) || mw.size(0) != y.size(-1))
    throw Error("resizer adjoint: y is " + c10::str(y.sizes()) + " but resizing " +
                std::to_string(in_height) + "×" + std::to_string(in_width) + " gives " +
                std::to_string(mh.size(0)) + "×" + std::to_string(mw.size(0)));
  return torch::matmul(torch::matmul(mh.t(), y), mw);
}

}  // namespace p2l::operators
