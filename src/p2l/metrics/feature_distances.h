// Distances between two sets of feature vectors ([N, D] tensors, one row per image). They do
// not know which network made the features: on Inception-v3 pool3 features they are FID
// (Heusel et al. 2017) and KID (Bińkowski et al. 2018); on another network's features they must
// be reported under another name (SPEC §6).
//
// Everything is computed in float64 on the CPU.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace p2l::metrics {

// Mean [D] and unbiased covariance [D, D] (divided by N − 1, as numpy.cov) of features [N, D].
struct GaussianStats {
  torch::Tensor mean;
  torch::Tensor covariance;
  int64_t count = 0;
};
// Throws p2l::Error for fewer than two rows or non-finite features.
GaussianStats gaussian_stats(const torch::Tensor& features);

// Fréchet distance between the Gaussians N(μ1, Σ1) and N(μ2, Σ2):
//   ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2 tr (Σ1 Σ2)^½.
// tr (Σ1 Σ2)^½ is computed as Σ_i √λ_i over the eigenvalues of the symmetric Λ^½ Vᵀ Σ2 V Λ^½
// (Σ1 = V Λ Vᵀ from a symmetric eigen-decomposition; the same spectrum as Σ1 Σ2), keeping the
// eigenvectors of Σ1 above the numerical-rank tolerance and setting negative eigenvalues from
// rounding to 0. No complex numbers and no iterative square root, so rank-deficient covariances
// (N ≤ D) are fine. The result can be a rounding-size negative for equal sets.
double frechet_distance(const GaussianStats& a, const GaussianStats& b);
double frechet_distance(const torch::Tensor& features_a, const torch::Tensor& features_b);

// Unbiased MMD² with the cubic polynomial kernel k(x, y) = (xᵀy / D + 1)³ between x [m, D] and
// y [n, D] (m, n ≥ 2): mean off-diagonal k over x×x, plus the same over y×y, minus twice the mean
// of k over x×y. Can be negative.
double polynomial_mmd2(const torch::Tensor& x, const torch::Tensor& y);

// KID's defaults are torch-fidelity's: 100 subsets of 1000 and seed 2020.
struct KernelDistanceOptions {
  int64_t subsets = 100;
  int64_t subset_size = 1000;  // capped at the smaller set's size
  uint64_t seed = 2020;
};

struct KernelDistance {
  double mean = 0;  // mean of polynomial_mmd2 over the subsets
  double std = 0;   // their population standard deviation (numpy.std)
  int64_t subsets = 0;
  int64_t subset_size = 0;  // the size used, after capping
};

// Draws `subsets` pairs of subsets without replacement (std::mt19937_64 seeded with `seed`, a
// partial Fisher–Yates shuffle) and averages polynomial_mmd2 over them. When the subset size is
// both sets' size every subset is the whole set and the result is exact and seed-independent.
// Throws p2l::Error when the dimensions differ or a set has fewer than two rows.
KernelDistance kernel_distance(const torch::Tensor& features_a, const torch::Tensor& features_b,
                               const KernelDistanceOptions& options = {});

}  // namespace p2l::metrics
