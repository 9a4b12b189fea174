// PSNR and SSIM (SPEC §6) on cases computed by hand or by an independent loop.
#include <gtest/gtest.h>

#include <cmath>

#include "p2l/error.h"
#include "p2l/metrics/image_quality.h"

namespace p2l::test {
namespace {

TEST(Metrics, PsnrOfAKnownOffset) {
  // 0.1 apart on [-1, 1] is 0.05 on [0, 1]: MSE 0.0025, PSNR = 10·log10(400) = 26.0206 dB.
  auto a = torch::zeros({1, 3, 8, 8});
  EXPECT_NEAR(metrics::psnr(a, a + 0.1), 10 * std::log10(400.0), 1e-5);
  EXPECT_TRUE(std::isinf(metrics::psnr(a, a)));
  // Values beyond [-1, 1] are clamped first: the error of 3 counts as 1 (the full range).
  EXPECT_NEAR(metrics::psnr(a - 1, a + 2), 0.0, 1e-9);
}

TEST(Metrics, SsimOfConstantImagesIsTheLuminanceTerm) {
  // σ = 0 everywhere: SSIM = (2μxμy + C1) / (μx² + μy² + C1) with μ on [0, 1].
  const double mx = 0.25, my = 0.75, c1 = 1e-4;
  auto a = torch::full({1, 3, 16, 16}, mx * 2 - 1), b = torch::full({1, 3, 16, 16}, my * 2 - 1);
  EXPECT_NEAR(metrics::ssim(a, b), (2 * mx * my + c1) / (mx * mx + my * my + c1), 1e-9);
  EXPECT_NEAR(metrics::ssim(a, a), 1.0, 1e-12);
}

TEST(Metrics, SsimMatchesADirectGaussianWindowComputation) {
  // An 11×11 image has exactly one valid window position: compute the weighted statistics by
  // explicit loops and compare.
  torch::manual_seed(3);
  auto a = torch::rand({1, 3, 11, 11}, torch::kDouble) * 2 - 1;
  auto b = (a + 0.3 * torch::randn({1, 3, 11, 11}, torch::kDouble)).clamp(-1, 1);
  double w[11][11], total = 0;
  for (int i = 0; i < 11; ++i)
    for (int j = 0; j < 11; ++j)
      total += w[i][j] = std::exp(-((i - 5) * (i - 5) + (j - 5) * (j - 5)) / (2 * 1.5 * 1.5));
  double expected = 0;
  for (int c = 0; c < 3; ++c) {
    double mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
    auto x = a[0][c] / 2 + 0.5, y = b[0][c] / 2 + 0.5;
    for (int i = 0; i < 11; ++i)
      for (int j = 0; j < 11; ++j) {
        const double wx = w[i][j] / total, xv = x[i][j].item<double>(), yv = y[i][j].item<double>();
        mx += wx * xv, my += wx * yv, sxx += wx * xv * xv, syy += wx * yv * yv, sxy += wx * xv * yv;
      }
    sxx -= mx * mx, syy -= my * my, sxy -= mx * my;
    const double c1 = 1e-4, c2 = 9e-4;
    expected += (2 * mx * my + c1) * (2 * sxy + c2) / ((mx * mx + my * my + c1) * (sxx + syy + c2));
  }
  expected /= 3;
  EXPECT_NEAR(metrics::ssim(a, b), expected, 1e-10);
  EXPECT_NEAR(metrics::ssim(b, a), expected, 1e-10);  // symmetric
  EXPECT_LT(expected, 1.0);
}

TEST(Metrics, ShapeMismatchIsAnError) {
  EXPECT_THROW(metrics::psnr(torch::zeros({1, 3, 8, 8}), torch::zeros({1, 3, 8, 9})), Error);
  EXPECT_THROW(metrics::ssim(torch::zeros({2, 3, 8, 8}), torch::zeros({2, 3, 8, 8})), Error);
}

}  // namespace
}  // namespace p2l::test
