#include "p2l/metrics/feature_distances.h"

#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "p2l/error.h"

namespace p2l::metrics {

namespace {

torch::Tensor as_feature_matrix(const torch::Tensor& features, const char* who) {
  if (!features.defined() || features.dim() != 2)
    throw Error(std::string(who) + ": expected features [N, D], got " +
                (features.defined() ? c10::str(features.sizes()) : std::string("nothing")));
  if (features.size(0) < 2)
    throw Error(std::string(who) + ": needs at least 2 feature vectors per set, got " +
                std::to_string(features.size(0)));
  auto x = features.detach().to(torch::kCPU, torch::kDouble);
  if (!torch::isfinite(x).all().item<bool>())
    throw Error(std::string(who) + ": features contain NaN or infinity");
  return x;
}

void require_same_dimension(int64_t a, int64_t b, const char* who) {
  if (a != b)
    throw Error(std::string(who) + ": feature dimensions differ: " + std::to_string(a) + " vs " +
                std::to_string(b));
}

// tr (S1 S2)^½ for symmetric positive semi-definite S1, S2. With S1 = V Λ Vᵀ, the matrix
// √S1 S2 √S1 is orthogonally similar to Λ^½ Vᵀ S2 V Λ^½, whose eigenvalues are those of S1 S2.
// Only the eigenvectors of S1 above the numerical-rank tolerance (numpy.linalg.matrix_rank's:
// λ_max · D · ε) are kept: the others are rounding noise around 0, and a covariance of N < D
// features has rank N − 1, which makes the second eigen-problem N × N instead of D × D.
// ATen's linalg_* functions, not torch::linalg:: (the C++ frontend header is gone in LibTorch 2.11).
double trace_sqrt_of_product(const torch::Tensor& s1, const torch::Tensor& s2) {
  auto [values, vectors] = torch::linalg_eigh(s1, "L");
  const double tolerance = values.max().item<double>() * static_cast<double>(s1.size(0)) *
                           std::numeric_limits<double>::epsilon();
  const auto kept = torch::nonzero(values > tolerance).flatten();
  if (kept.numel() == 0) return 0;
  const auto basis = vectors.index_select(1, kept);
  const auto root = values.index_select(0, kept).sqrt();
  auto m =
      torch::matmul(torch::matmul(basis.t(), s2), basis) * root.unsqueeze(0) * root.unsqueeze(1);
  m = (m + m.t()) / 2;  // symmetric up to rounding; eigvalsh reads one triangle only
  return torch::linalg_eigvalsh(m, "L").clamp_min(0).sqrt().sum().item<double>();
}

// `count` distinct indices of [0, n), uniformly: the first `count` steps of a Fisher–Yates
// shuffle. rng() % k is biased by at most k / 2⁶⁴, far below anything a metric can show, and
// unlike std::uniform_int_distribution it draws the same indices with every standard library.
std::vector<int64_t> draw_subset(int64_t n, int64_t count, std::mt19937_64& rng) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  for (int64_t i = 0; i < count; ++i) {
    const auto j = i + static_cast<int64_t>(rng() % static_cast<uint64_t>(n - i));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  order.resize(static_cast<size_t>(count));
  return order;
}

}  // namespace

GaussianStats gaussian_stats(const torch::Tensor& features) {
  const auto x = as_feature_matrix(features, "gaussian_stats");
  GaussianStats stats;
  stats.count = x.size(0);
  stats.mean = x.mean(0);
  const auto centred = x - stats.mean;
  stats.covariance = torch::matmul(centred.t(), centred) / static_cast<double>(stats.count - 1);
  return stats;
}

double frechet_distance(const GaussianStats& a, const GaussianStats& b) {
  require_same_dimension(a.mean.size(0), b.mean.size(0), "frechet_distance");
  const auto s1 = a.covariance.to(torch::kDouble), s2 = b.covariance.to(torch::kDouble);
  const auto diff = a.mean.to(torch::kDouble) - b.mean.to(torch::kDouble);
  const double trace_sqrt = trace_sqrt_of_product(s1, s2);
  return diff.dot(diff).item<double>() + s1.trace().item<double>() + s2.trace().item<double>() -
         2 * trace_sqrt;
}

double frechet_distance(const torch::Tensor& features_a, const torch::Tensor& features_b) {
  require_same_dimension(features_a.dim() == 2 ? features_a.size(1) : -1,
                         features_b.dim() == 2 ? features_b.size(1) : -1, "frechet_distance");
  return frechet_distance(gaussian_stats(features_a), gaussian_stats(features_b));
}

double polynomial_mmd2(const torch::Tensor& x_in, const torch::Tensor& y_in) {
  const auto x = as_feature_matrix(x_in, "polynomial_mmd2");
  const auto y = as_feature_matrix(y_in, "polynomial_mmd2");
  require_same_dimension(x.size(1), y.size(1), "polynomial_mmd2");
  const double d = static_cast<double>(x.size(1));
  auto kernel = [d](const torch::Tensor& p, const torch::Tensor& q) {
    return (torch::matmul(p, q.t()) / d + 1).pow(3);
  };
  const double m = static_cast<double>(x.size(0)), n = static_cast<double>(y.size(0));
  const auto kxx = kernel(x, x), kyy = kernel(y, y);
  const double xx = (kxx.sum() - kxx.trace()).item<double>() / (m * (m - 1));
  const double yy = (kyy.sum() - kyy.trace()).item<double>() / (n * (n - 1));
  const double xy = kernel(x, y).sum().item<double>() / (m * n);
  return xx + yy - 2 * xy;
}

KernelDistance kernel_distance(const torch::Tensor& features_a, const torch::Tensor& features_b,
                               const KernelDistanceOptions& options) {
  const auto a = as_feature_matrix(features_a, "kernel_distance");
  const auto b = as_feature_matrix(features_b, "kernel_distance");
  require_same_dimension(a.size(1), b.size(1), "kernel_distance");
  if (options.subsets < 1) throw Error("kernel_distance: subsets must be at least 1");
  if (options.subset_size < 2) throw Error("kernel_distance: subset size must be at least 2");
  KernelDistance result;
  result.subsets = options.subsets;
  result.subset_size = std::min({options.subset_size, a.size(0), b.size(0)});
  std::mt19937_64 rng(options.seed);
  std::vector<double> values;
  for (int64_t i = 0; i < options.subsets; ++i) {
    const auto pick = [&](const torch::Tensor& set) {
      const auto idx = draw_subset(set.size(0), result.subset_size, rng);
      return set.index_select(0, torch::tensor(idx, torch::kLong));
    };
    auto sa = pick(a);
    auto sb = pick(b);
    values.push_back(polynomial_mmd2(sa, sb));
  }
  const double count = static_cast<double>(values.size());
  result.mean = std::accumulate(values.begin(), values.end(), 0.0) / count;
  double squares = 0;
  for (double v : values) squares += (v - result.mean) * (v - result.mean);
  result.std = std::sqrt(squares / count);
  return result;
}

}  // namespace p2l::metrics
