// `p2l demo` as a plan of the evaluation harness: one clean image degraded by each task and
// restored by each method (an evaluation of one image), then a montage (rows: tasks; columns:
// clean | measurement | naive | methods) and a PSNR / SSIM / time table.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "p2l/eval/inputs.h"
#include "p2l/eval/plan.h"
#include "p2l/solvers/solver.h"

namespace p2l::eval {

struct DemoOptions {
  std::string model;  // folder
  std::string image;  // "" = the first of the model's test images
  std::vector<std::string> tasks = evaluation_tasks();
  std::vector<std::string> methods = solvers::method_names();
  int64_t steps = 0;  // 0 = each method's default
  double noise = 0.05;
  uint64_t seed = 0;  // the evaluation's base seed (plan.h)
  std::string precision = "fp32", vae_precision = "fp32";  // model/precision.h
  torch::Device device = torch::kCPU;
  int64_t batch = 1;
  // The montage; the table goes to OUT.json beside it and the evaluation folder (records,
  // images) to OUT.runs/.
  std::string output = "demo.png";
  bool resume = false;  // continue the evaluation in OUT.runs/ (otherwise it starts afresh)
  bool show_progress = true;
};

// The evaluation a demo runs. Throws p2l::Error for an unknown task or method, or no image.
Plan demo_plan(const DemoOptions& options);

struct DemoReport {
  std::string markdown;  // the table
  std::string table;     // OUT.json
  std::string columns;   // of the montage, "clean | measurement | naive | p2l | …"
};

// Runs the demo and writes the montage and the table; throws p2l::Error as run_evaluation does.
DemoReport run_demo(const DemoOptions& options);

}  // namespace p2l::eval
