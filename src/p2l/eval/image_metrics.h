// The full-reference metrics an evaluation computes for every restored image and every naive
// reconstruction, by name. Each name is a key of a job's record ("psnr", and "naive_psnr" for the
// naive reconstruction) and a column of the summary, so a metric added here (LPIPS, …) flows into
// results.jsonl, summary.{md,csv,json} without touching the harness.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace p2l::eval {

struct ImageMetric {
  std::string name;   // record key and summary column: lower case, no spaces
  std::string title;  // table heading
  int precision = 4;  // decimals in summary.md
  // restored and clean are [1, 3, H, W] in [-1, 1] on the CPU, float32.
  std::function<double(const torch::Tensor& restored, const torch::Tensor& clean)> compute;
};

// PSNR (dB) and SSIM (metrics/image_quality.h).
std::vector<ImageMetric> default_image_metrics();

// Their names, as a plan lists them.
std::vector<std::string> metric_names(const std::vector<ImageMetric>& metrics);

// The heading and precision of a metric known by name; a name not among the defaults (a metric
// of a newer build, read back from a results file) gets itself as title and 4 decimals.
ImageMetric describe_image_metric(const std::string& name);

}  // namespace p2l::eval
