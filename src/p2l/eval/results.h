// The results of an evaluation on disk, one folder per run:
//   results.jsonl                   one JSON line per finished job, appended as it finishes
//   plan.json                       the plan those results belong to (plan.h)
//   results.shard-I-of-N.jsonl      the same for shard I of N, so shards can share a folder
//   plan.shard-I-of-N.json
//   images/TASK/LABEL/IMAGE.png     restored images; images/TASK/{measurement,naive}/IMAGE.png
// A job's record (JobRecord) holds its key fields, the hyperparameters it ran with, every image
// metric of the result and of the naive reconstruction, the data residual, seconds, network
// evaluations and status "ok" or "diverged"; image paths are relative to the folder.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "p2l/eval/plan.h"

namespace p2l::eval {

// "IMAGE|TASK|LABEL" of a record, as Job::key() of its job.
std::string record_key(const nlohmann::json& record);

// File names in a run folder for a shard (results.jsonl / plan.json for the whole run).
std::string results_file_name(const Shard& shard);
std::string plan_file_name(const Shard& shard);

struct ResultsFile {
  std::vector<nlohmann::json> records;  // complete lines, in file order
  size_t complete_bytes = 0;  // length of the file up to the end of its last complete line
  bool partial_tail = false;  // a last line without its newline (a run killed mid-write)
};

// Reads a JSON Lines results file; a missing file reads as empty. A last line without its newline
// is left out (partial_tail); any other line that is not a record throws p2l::Error naming the
// file and line.
ResultsFile read_results(const std::string& path);

// Cuts a partial last line off the file, so that appended lines start on a line of their own.
void drop_partial_tail(const std::string& path, const ResultsFile& file);
// Drops the records whose images are not in `dir` — the output, and for the job that writes them
// (an image × task's first method) the measurement and the naive reconstruction — and rewrites
// the file without them (atomically); returns how many were dropped. A run carried to another
// machine as its records alone (scripts/results.sh's saved partial runs) then runs those jobs
// again on --resume: the summary and the montages read the images.
size_t drop_records_without_images(const Plan& plan, const std::string& dir,
                                   const std::string& path, ResultsFile& file);

// The records of a plan's jobs by key. Records of keys outside the plan throw p2l::Error naming
// `what`; a key recorded twice with different results (seconds and paths aside) throws too, and
// an identical repeat is dropped.
std::map<std::string, nlohmann::json> index_records(const Plan& plan,
                                                    const std::vector<nlohmann::json>& records,
                                                    const std::string& what);

// Whether two records of one job agree on everything but time and absolute paths (and the fit
// check, when only one of them has it).
bool same_result(const nlohmann::json& a, const nlohmann::json& b);

// Whether `other`, a record of the same job that agrees with `kept`, should replace it: it has
// the fit check and `kept` does not.
bool completes(const nlohmann::json& kept, const nlohmann::json& other);

// data_residual / reference_residual of a finished job's record (pipelines/fit.h); none for a
// diverged job or a record written before the reference was recorded.
std::optional<double> fit_ratio(const nlohmann::json& record);

// Whether a record is a finished restoration that did not fit its measurement.
bool misfit(const nlohmann::json& record);

}  // namespace p2l::eval
