// The summary of an evaluation, computed from its plan and its records only (never from what a
// process happened to run), so that a resumed, sharded or uninterrupted run gives the same
// summary apart from time. Per task (in plan order): the naive reconstruction's metrics once, then
// per method label (in plan order): n finished, n diverged, n that did not fit their measurement
// (pipelines/fit.h; still counted as finished), mean ± std of every image metric, of the data
// residual and of seconds, and the mean network evaluations per image; then the jobs that did not
// fit, by name
// ("misfits"), and how many finished jobs carry no fit check ("fit_unchecked").
#pragma once

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "p2l/eval/plan.h"

namespace p2l::eval {

// `records` by key (index_records); jobs without a record are left out of the statistics.
nlohmann::json summarize(const Plan& plan, const std::map<std::string, nlohmann::json>& records);

// FD-emoji (docs/metrics.md) per task and method label, when the plan's model folder ships its
// network (`fd_emoji/`, as models/emoji-64 does): the Fréchet distance between the saved
// restorations of the finished jobs and the clean images of the same jobs (and likewise for the
// naive reconstructions). Added as "fd_emoji" to the naive entry and to each method row (null
// with fewer than 2 images), and "fd_emoji" to the summary's "set_metrics". A set metric of
// the saved images in `folder`, so it is the same for resumed, sharded and merged runs.
void add_set_metrics(nlohmann::json& summary, const std::string& folder, const Plan& plan,
                     const std::map<std::string, nlohmann::json>& records);

// summary.json, summary.csv and summary.md in `folder`; returns the markdown. Time is in the last
// columns of the tables and under "seconds" keys of the JSON.
std::string write_summary(const std::string& folder, const nlohmann::json& summary);

// A montage row of one image and task: clean | measurement | naive | each method label, read
// from the run folder; a job without a restored image stays undefined (white); empty when no
// job of the image and task has a record.
std::vector<torch::Tensor> montage_row(const std::string& folder, const Plan& plan,
                                       const std::map<std::string, nlohmann::json>& records,
                                       const EvalImage& image, const std::string& task);

// montage_TASK.png in `folder` for every task: rows are images, columns clean | measurement |
// naive | each method label; a job without a restored image (missing, diverged) stays white.
void write_montages(const std::string& folder, const Plan& plan,
                    const std::map<std::string, nlohmann::json>& records);

}  // namespace p2l::eval
