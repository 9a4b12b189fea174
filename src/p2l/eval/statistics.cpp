#include "p2l/eval/statistics.h"

#include <cmath>

namespace p2l::eval {

MeanStd mean_std(const std::vector<double>& values) {
  if (values.empty()) return {};
  double sum = 0;
  for (double v : values) sum += v;
  const double mean = sum / values.size();
  double squares = 0;
  for (double v : values) squares += (v - mean) * (v - mean);
  return {mean, values.size() > 1 ? std::sqrt(squares / (values.size() - 1)) : 0.0};
}

}  // namespace p2l::eval
