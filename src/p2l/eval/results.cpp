#include "p2l/eval/results.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "p2l/error.h"
#include "p2l/io/json_file.h"
#include "p2l/pipelines/fit.h"

namespace p2l::eval {

namespace fs = std::filesystem;

std::string record_key(const nlohmann::json& record) {
  return record.at("image").get<std::string>() + "|" + record.at("task").get<std::string>() + "|" +
         record.at("label").get<std::string>();
}

std::string results_file_name(const Shard& shard) {
  return shard.whole() ? "results.jsonl" : "results." + shard.name() + ".jsonl";
}

std::string plan_file_name(const Shard& shard) {
  return shard.whole() ? "plan.json" : "plan." + shard.name() + ".json";
}

ResultsFile read_results(const std::string& path) {
  ResultsFile file;
  if (!fs::exists(path)) return file;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  size_t start = 0;
  int line_number = 0;
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    if (end == std::string::npos) {
      file.partial_tail = true;
      break;
    }
    ++line_number;
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    file.complete_bytes = start;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      auto record = io::parse_json(line, path + ":" + std::to_string(line_number));
      record_key(record);  // has the key fields
      record.at("status").get<std::string>();
      file.records.push_back(std::move(record));
    } catch (const nlohmann::json::exception& e) {
      throw Error(path + ":" + std::to_string(line_number) + ": not a result record (" + e.what() +
                  ")");
    }
  }
  return file;
}

void drop_partial_tail(const std::string& path, const ResultsFile& file) {
  if (file.partial_tail) fs::resize_file(path, file.complete_bytes);
}

size_t drop_records_without_images(const Plan& plan, const std::string& dir,
                                   const std::string& path, ResultsFile& file) {
  const auto jobs = plan.jobs();
  auto present = [&dir](const nlohmann::json& record, const char* field) {
    const auto it = record.find(field);
    return it == record.end() || !it->is_string() ||
           fs::exists(fs::path(dir) / it->get<std::string>());
  };
  auto images_present = [&](const nlohmann::json& record) {
    const auto job = record.find("job");
    const int64_t index = job != record.end() && job->is_number_integer() ? job->get<int64_t>() : -1;
    const bool writes_measurement = index >= 0 && index < static_cast<int64_t>(jobs.size()) &&
                                    jobs[index].method_index == 0;
    return present(record, "output") &&
           (!writes_measurement ||
            (present(record, "measurement_image") && present(record, "naive_image")));
  };
  std::vector<nlohmann::json> kept;
  for (auto& record : file.records)
    if (images_present(record)) kept.push_back(std::move(record));
  const size_t dropped = file.records.size() - kept.size();
  file.records = std::move(kept);
  if (dropped > 0) {
    std::string text;
    for (const auto& record : file.records) text += record.dump() + "\n";
    io::write_text(path, text);
  }
  return dropped;
}

bool same_result(const nlohmann::json& a, const nlohmann::json& b) {
  // A record from before the fit check agrees with its copy that `--summarize` completed.
  const bool both_checked = a.contains("reference_residual") == b.contains("reference_residual");
  auto strip = [both_checked](nlohmann::json r) {
    r.erase("seconds");
    r.erase("image_path");
    if (!both_checked) r.erase("reference_residual"), r.erase("fit_ratio");
    return r;
  };
  return strip(a) == strip(b);
}

bool completes(const nlohmann::json& kept, const nlohmann::json& other) {
  return !kept.contains("reference_residual") && other.contains("reference_residual");
}

std::map<std::string, nlohmann::json> index_records(const Plan& plan,
                                                    const std::vector<nlohmann::json>& records,
                                                    const std::string& what) {
  std::set<std::string> keys;
  for (const auto& job : plan.jobs()) keys.insert(job.key());
  std::map<std::string, nlohmann::json> by_key;
  for (const auto& record : records) {
    const auto key = record_key(record);
    if (!keys.count(key))
      throw Error(what + ": result " + key + " is not a job of this evaluation's plan");
    auto [it, inserted] = by_key.emplace(key, record);
    if (!inserted && !same_result(it->second, record))
      throw Error(what + ": job " + key + " was recorded twice with different results");
    if (!inserted && completes(it->second, record)) it->second = record;
  }
  return by_key;
}

std::optional<double> fit_ratio(const nlohmann::json& record) {
  if (record.value("status", "") != "ok" || !record.contains("reference_residual") ||
      !record.contains("data_residual"))
    return std::nullopt;
  return pipelines::fit_ratio(record.at("data_residual").get<double>(),
                            record.at("reference_residual").get<double>());
}

bool misfit(const nlohmann::json& record) {
  const auto ratio = fit_ratio(record);
  return ratio && *ratio > pipelines::kMisfitRatio;
}

}  // namespace p2l::eval
