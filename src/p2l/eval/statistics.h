// Mean and sample standard deviation of per-image results (sweeps and evaluation summaries).
#pragma once

#include <vector>

namespace p2l::eval {

struct MeanStd {
  double mean = 0, std = 0;  // std with n − 1 (0 for a single value)
};

// Sums in the order given, so the same values in the same order give the same bits.
MeanStd mean_std(const std::vector<double>& values);  // {0, 0} for none

}  // namespace p2l::eval
