// `p2l sweep` as a plan of the evaluation harness: one method over a grid of its
// hyperparameters, each grid point a column (labelled by its values) of an evaluation on tasks ×
// images — so a sweep resumes, batches and runs on a GPU as an evaluation does. Its report: each
// point's mean ± std PSNR / SSIM, data residual and time per task (OUT.md, OUT.json) and an SVG
// plot of PSNR against the first axis (one line per task and value of the others).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "p2l/eval/plan.h"

namespace p2l::eval {

struct SweepAxis {
  std::string name;
  std::vector<double> values;
};

// "NAME=V1,V2,..." ("inf" and true/false allowed); throws p2l::Error quoting `flag` and the spec.
SweepAxis parse_axis(const std::string& spec, const std::string& flag = "--grid");

struct SweepOptions {
  std::string model;  // folder
  std::string method = "p2l";
  std::vector<std::string> tasks = {"sr"};
  std::vector<std::string> grid;    // "NAME=V1,V2,...", a product grid, the first axis slowest
  std::vector<std::string> set;     // "NAME=VALUE" held fixed
  std::vector<std::string> images;  // files or folders; empty: the model's test_images
  double noise = 0.05;
  uint64_t seed = 0;  // the evaluation's base seed (plan.h: each job's seeds derive from it)
  std::string precision = "fp32", vae_precision = "fp32";  // model/precision.h
  torch::Device device = torch::kCPU;
  int64_t batch = 1;
  // OUT.md, OUT.json and OUT.svg; the evaluation folder (records, images) is `runs_folder`,
  // by default OUT.runs/.
  std::string output = "sweep";
  std::string runs_folder;
  bool resume = false;  // continue the evaluation in the runs folder (otherwise it starts afresh)
  std::string runs_folder_or_default() const;
  bool show_progress = true;
};

// The evaluation a sweep runs: one column per grid point, labelled "NAME-VALUE_NAME-VALUE".
// Throws p2l::Error for a malformed --grid/--set, a name the method does not have or a value it
// does not take, before any model is loaded.
Plan sweep_plan(const SweepOptions& options);

struct SweepReport {
  std::string markdown;  // the table
  std::string plot;      // OUT.svg, or "" when there was nothing to plot
  std::string plot_error;
};

// Runs the sweep and writes its report; throws p2l::Error as run_evaluation does, and for a bad
// grid (sweep_plan) before any model is read.
SweepReport run_sweep(const SweepOptions& options);

}  // namespace p2l::eval
