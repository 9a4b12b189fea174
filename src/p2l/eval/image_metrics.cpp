#include "p2l/eval/image_metrics.h"

#include "p2l/metrics/image_quality.h"

namespace p2l::eval {

std::vector<ImageMetric> default_image_metrics() {
  return {{"psnr", "PSNR (dB)", 2,
           [](const torch::Tensor& x, const torch::Tensor& ref) { return metrics::psnr(x, ref); }},
          {"ssim", "SSIM", 3,
           [](const torch::Tensor& x, const torch::Tensor& ref) { return metrics::ssim(x, ref); }}};
}

ImageMetric describe_image_metric(const std::string& name) {
  for (auto& metric : default_image_metrics())
    if (metric.name == name) return metric;
  return {name, name, 4, {}};
}

std::vector<std::string> metric_names(const std::vector<ImageMetric>& metrics) {
  std::vector<std::string> names;
  for (const auto& metric : metrics) names.push_back(metric.name);
  return names;
}

}  // namespace p2l::eval
