// `p2l eval` as a library: runs a plan's jobs (or one shard of them) into a folder, appending
// each job's record as it finishes, resumable; merges shard folders; writes the summary.
#pragma once

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "p2l/eval/image_metrics.h"
#include "p2l/eval/plan.h"

namespace p2l::eval {

struct EvalOptions {
  Plan plan;           // metrics are filled in from `metrics`
  std::string output;  // the run folder
  std::vector<ImageMetric> metrics = default_image_metrics();
  Shard shard;            // default: the whole run
  bool resume = false;    // skip jobs already recorded; otherwise an existing record is an error
  // The folder belongs to the caller (`p2l demo`, `p2l sweep`): without `resume`, an earlier
  // run's files in it are removed first (a folder holding anything else is an error).
  bool start_afresh = false;
  int64_t max_jobs = -1;  // stop after this many jobs (< 0: all), as if interrupted
  torch::Device device = torch::kCPU;
  // Jobs of the same task, method and prompt solved together, up to this many (one batched solve);
  // each record is what the job's own solve gives, up to the order of float reductions.
  int64_t batch = 1;
  bool show_progress = true;
};

struct EvalRun {
  int64_t jobs = 0;          // of this shard
  int64_t already_done = 0;  // skipped on resume
  int64_t ran = 0, diverged = 0;
  int64_t misfit = 0;            // finished but did not fit the measurement (pipelines/fit.h)
  bool complete = false;         // every job of the shard has a record
  std::string summary_markdown;  // written for a whole, complete run
};

// Runs the jobs of the shard that have no record yet, in job order. A diverged job is recorded
// (status "diverged") and the run goes on; any other error stops it with what was recorded kept.
// A whole run that completes writes the summary and montages. Throws p2l::Error for a folder
// that holds results of another plan, or results when `resume` is off.
EvalRun run_evaluation(const EvalOptions& options);

// Reads plan.json and results.jsonl of a folder and writes summary.{md,csv,json} and the
// montages; returns the markdown. With `fit_model` (the model the run used: the plan names a
// folder, not what was in it), records from before the fit check (pipelines/fit.h) get their
// reference residual first, and results.jsonl is rewritten with it (atomically; nothing else in it
// changes). Throws p2l::Error for a folder with only shard files (merge).
std::string summarize_folder(const std::string& folder, const std::string& fit_model = "");

// Adds reference_residual (and fit_ratio, to finished ones) to the records that lack it, as a run
// with the check records them, recomputing each measurement from the plan's seeds, with the model
// at `model_path` on the CPU; returns how many were added. Throws p2l::Error for a record whose
// measurement seed is not the plan's.
int64_t add_reference_residuals(const Plan& plan, std::vector<nlohmann::json>& records,
                                const std::string& model_path);

struct MergeReport {
  int64_t jobs = 0, records = 0, files = 0;
  std::string summary_markdown;
};

// Gathers results.jsonl and results.shard-*.jsonl of `inputs` (their plans must agree) into
// `output`/results.jsonl in job order, with plan.json, the images (copied when the folders
// differ), the summary and the montages. Throws p2l::Error for conflicting duplicates, or for
// missing jobs unless `allow_partial`.
MergeReport merge_evaluations(const std::vector<std::string>& inputs, const std::string& output,
                              bool allow_partial);

}  // namespace p2l::eval
