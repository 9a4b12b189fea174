#include "p2l/eval/runner.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <regex>

#include "p2l/error.h"
#include "p2l/eval/inputs.h"
#include "p2l/eval/results.h"
#include "p2l/eval/summary.h"
#include "p2l/io/image.h"
#include "p2l/io/json_file.h"
#include "p2l/model/checkpoint.h"
#include "p2l/model/precision.h"
#include "p2l/operators/naive.h"
#include "p2l/pipelines/fit.h"
#include "p2l/pipelines/restoration.h"
#include "p2l/progress.h"

namespace p2l::eval {

namespace fs = std::filesystem;

namespace {

// Where a job's images go, relative to the run folder.
std::string image_file(const Job& job, const std::string& column, const std::string& suffix = "") {
  return (fs::path("images") / *job.task / column /
          (fs::path(job.image->name).stem().string() + suffix + ".png"))
      .string();
}

void save_image(const fs::path& dir, const std::string& relative, const torch::Tensor& image) {
  const auto path = dir / relative;
  std::error_code ec;  // shards create the same folders concurrently: only the result matters
  fs::create_directories(path.parent_path(), ec);
  if (!fs::is_directory(path.parent_path()))
    throw Error(path.parent_path().string() + ": cannot create folder");
  io::save_png(path.string(), image);
}

double elapsed_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A job before its solve: its measurement (the same for every method), the record with the
// naive reconstruction's metrics and the fit check's reference, and the restore request.
struct PreparedJob {
  const Job* job;
  torch::Tensor clean;
  operators::Measurement measurement;
  nlohmann::json record;
  pipelines::RestoreRequest request;
};

PreparedJob prepare_job(model::StableDiffusion& model, const Plan& plan, const Job& job,
                        const fs::path& dir, const std::vector<ImageMetric>& metrics) {
  const auto seeds = job_seeds(plan.seed, job.image->name, *job.task);
  PreparedJob p{&job, io::load_image(job.image->path), {}, {}, {}};
  p.measurement = measure_task(p.clean, *job.task, plan.noise, seeds.measurement);
  const auto& measurement = p.measurement;
  const auto naive = operators::naive_reconstruction(
      *measurement.op, measurement.y.to(torch::kFloat), measurement.height, measurement.width);
  p.record = {{"job", job.index},
              {"image", job.image->name},
              {"image_path", job.image->path},
              {"task", *job.task},
              {"label", job.method->label},
              {"method", job.method->method},
              {"overrides", job.method->to_json()["overrides"]},
              {"noise", plan.noise},
              {"measurement_seed", seeds.measurement},
              {"seed", seeds.solver},
              {"measurement_image", image_file(job, "measurement")},
              {"naive_image", image_file(job, "naive")}};
  // The first method of an image × task writes its measurement and naive images: exactly one job,
  // so shards sharing a folder never write the same file.
  if (job.method_index == 0) {
    save_image(dir, p.record["measurement_image"], measurement.y);
    save_image(dir, p.record["naive_image"], naive);
  }
  for (const auto& metric : metrics)
    p.record["naive_" + metric.name] = metric.compute(naive, p.clean);
  p.record["reference_residual"] = pipelines::autoencoded_residual(model, measurement, p.clean);
  p.request.method = job.method->method;
  p.request.overrides = plan.overrides_for(*job.method);
  p.request.seed = seeds.solver;
  p.request.prompt = prompt_for(*job.method, *job.image);
  if (!p.request.prompt.empty()) p.record["prompt"] = p.request.prompt;
  p.request.show_progress = false;  // the evaluation's own progress line stands for all
  return p;
}

nlohmann::json finished_record(PreparedJob& p, const pipelines::RestoreOutcome& out,
                               const fs::path& dir, const std::vector<ImageMetric>& metrics) {
  auto& record = p.record;
  record["output"] = image_file(*p.job, p.job->method->label);
  save_image(dir, record["output"], out.image);
  const auto restored = out.image.to(torch::kCPU, torch::kFloat);
  for (const auto& metric : metrics) record[metric.name] = metric.compute(restored, p.clean);
  record["status"] = "ok";
  record["parameters"] = out.report.parameters.to_json();
  record["data_residual"] = out.report.data_residual;
  if (const auto ratio = fit_ratio(record)) record["fit_ratio"] = *ratio;
  record["network_evaluations"] = out.report.counts.to_json();
  record["seconds"] = out.report.seconds;
  if (out.report.batch > 0) record["batch"] = out.report.batch;
  return record;
}

// One job on its own: a diverged solve is recorded (status "diverged") with its last finite
// estimate, so that too aggressive a variant does not end a long evaluation.
nlohmann::json run_job(model::StableDiffusion& model, PreparedJob& p, const fs::path& dir,
                       const std::vector<ImageMetric>& metrics) {
  const auto start = std::chrono::steady_clock::now();
  try {
    return finished_record(p, pipelines::restore(model, p.measurement, p.request), dir, metrics);
  } catch (const solvers::DivergenceError& e) {
    auto& record = p.record;
    record["status"] = "diverged";
    record["error"] = e.what();
    record["step"] = e.step();
    record["parameters"] =
        pipelines::solver_for(p.request, model, p.measurement)->parameters().to_json();
    record["seconds"] = elapsed_since(start);
    if (e.last_finite_estimate().defined()) {
      record["last_finite_estimate"] = image_file(*p.job, p.job->method->label, ".last-finite");
      save_image(dir, record["last_finite_estimate"], e.last_finite_estimate());
    }
    return record;
  }
}

// Jobs of one task and method solved together (--batch); each record as its own solve writes it.
// A batch in which a sample diverges is run again job by job, so that the diverged job is
// recorded as it would be alone and the others finish.
std::vector<nlohmann::json> run_jobs(model::StableDiffusion& model, const Plan& plan,
                                     const std::vector<const Job*>& jobs, const fs::path& dir,
                                     const std::vector<ImageMetric>& metrics) {
  std::vector<PreparedJob> prepared;
  for (const auto* job : jobs) prepared.push_back(prepare_job(model, plan, *job, dir, metrics));
  std::vector<nlohmann::json> records;
  if (prepared.size() > 1) {
    std::vector<operators::Measurement> measurements;
    std::vector<uint64_t> seeds;
    std::vector<std::string> prompts;
    for (const auto& p : prepared) {
      measurements.push_back(p.measurement);
      seeds.push_back(p.request.seed);
      prompts.push_back(p.request.prompt);
    }
    try {
      const auto outcomes =
          pipelines::restore_batch(model, measurements, prepared.front().request, seeds, prompts);
      for (size_t i = 0; i < prepared.size(); ++i)
        records.push_back(finished_record(prepared[i], outcomes[i], dir, metrics));
      return records;
    } catch (const solvers::DivergenceError&) {
      records.clear();
    }
  }
  for (auto& p : prepared) records.push_back(run_job(model, p, dir, metrics));
  return records;
}

std::string write_outputs(const fs::path& dir, const Plan& plan,
                          const std::map<std::string, nlohmann::json>& records) {
  auto summary = summarize(plan, records);
  add_set_metrics(summary, dir.string(), plan, records);
  const auto markdown = write_summary(dir.string(), summary);
  write_montages(dir.string(), plan, records);
  return markdown;
}

// Removes what an evaluation wrote into `dir` (records, plans, images, summary, montages); throws
// p2l::Error, removing nothing, when the folder holds anything else.
void remove_earlier_run(const fs::path& dir) {
  if (!fs::exists(dir)) return;
  static const std::regex kRunFile(
      R"((results(\.shard-\d+-of-\d+)?\.jsonl|plan(\.shard-\d+-of-\d+)?\.json|summary\.(md|csv|json)|montage_.*\.png|images))");
  std::vector<fs::path> earlier;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const auto name = entry.path().filename().string();
    if (!std::regex_match(name, kRunFile))
      throw Error(dir.string() + " holds " + name +
                  ", which no evaluation wrote: pick another output name");
    earlier.push_back(entry.path());
  }
  for (const auto& path : earlier) fs::remove_all(path);
}

}  // namespace

int64_t add_reference_residuals(const Plan& plan, std::vector<nlohmann::json>& records,
                                const std::string& model_path) {
  std::vector<nlohmann::json*> missing;
  for (auto& record : records)
    if (!record.contains("reference_residual")) missing.push_back(&record);
  if (missing.empty()) return 0;
  std::map<std::string, const EvalImage*> images;
  for (const auto& image : plan.images) images[image.name] = &image;
  auto model = model::load_stable_diffusion(model_path, {});
  for (auto* record : missing) {
    const auto name = record->at("image").get<std::string>();
    const auto task = record->at("task").get<std::string>();
    const auto it = images.find(name);
    if (it == images.end()) throw Error(record_key(*record) + ": image not in the plan");
    const auto seeds = job_seeds(plan.seed, name, task);
    if (record->value("measurement_seed", seeds.measurement) != seeds.measurement)
      throw Error(record_key(*record) + ": its measurement seed is not the plan's (" +
                  std::to_string(seeds.measurement) + "): recorded by another build?");
    const auto clean = io::load_image(it->second->path);
    const auto measurement = measure_task(clean, task, plan.noise, seeds.measurement);
    (*record)["reference_residual"] = pipelines::autoencoded_residual(model, measurement, clean);
    if (const auto ratio = fit_ratio(*record)) (*record)["fit_ratio"] = *ratio;
  }
  return static_cast<int64_t>(missing.size());
}

EvalRun run_evaluation(const EvalOptions& options) {
  Plan plan = options.plan;
  plan.metrics = metric_names(options.metrics);
  plan.validate();
  if (options.output.empty()) throw Error("eval: no output folder (-o DIR)");
  const fs::path dir(options.output);
  if (options.start_afresh && !options.resume) remove_earlier_run(dir);
  const auto results_path = (dir / results_file_name(options.shard)).string();
  const auto plan_path = (dir / plan_file_name(options.shard)).string();
  std::error_code ec;  // shards sharing the folder may create it at the same moment
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir)) throw Error(options.output + ": cannot create the run folder");

  auto file = read_results(results_path);
  const bool has_results = !file.records.empty() || file.partial_tail;
  if (has_results && !options.resume)
    throw Error(results_path +
                " already holds results: pass --resume to continue that run, or "
                "pick another folder (-o)");
  if (has_results) {
    if (!fs::exists(plan_path))
      throw Error(results_path + " has no " + plan_file_name(options.shard) +
                  " beside it: cannot tell which evaluation it belongs to; pick another folder");
    const auto difference = plan.difference(Plan::from_json(io::read_json(plan_path), plan_path));
    if (!difference.empty())
      throw Error(results_path + " holds results of another evaluation (" + difference +
                  " differ): run it with the same settings, or pick another folder (-o)");
    drop_partial_tail(results_path, file);
    drop_records_without_images(plan, options.output, results_path, file);
  }
  io::write_json(plan_path, plan.to_json());
  const auto done = index_records(plan, file.records, results_path);

  std::vector<Job> todo;
  const auto jobs = plan.jobs();
  EvalRun run;
  for (const auto& job : jobs) {
    if (!options.shard.takes(job.index)) continue;
    ++run.jobs;
    if (done.count(job.key()))
      ++run.already_done;
    else
      todo.push_back(job);
  }
  if (options.max_jobs >= 0 && static_cast<int64_t>(todo.size()) > options.max_jobs)
    todo.resize(options.max_jobs);

  if (!todo.empty()) {
    model::LoadOptions load;
    load.device = options.device;
    model::set_precisions(load, plan.precision, plan.vae_precision, "the plan's precision",
                          "the plan's vae_precision");
    auto model = model::load_stable_diffusion(plan.model, load);
    Progress progress("eval", run.jobs, options.show_progress);
    for (size_t first = 0; first < todo.size();) {
      // The next jobs of the same task and method, up to --batch of them (each with its own
      // prompt where the method starts from the image's caption).
      std::vector<const Job*> batch = {&todo[first]};
      while (static_cast<int64_t>(batch.size()) < options.batch &&
             first + batch.size() < todo.size() &&
             *todo[first + batch.size()].task == *todo[first].task &&
             todo[first + batch.size()].method == todo[first].method)
        batch.push_back(&todo[first + batch.size()]);
      first += batch.size();
      std::vector<nlohmann::json> records;
      try {
        records = run_jobs(model, plan, batch, dir, options.metrics);
      } catch (const Error& e) {
        throw Error(batch.front()->key() + (batch.size() > 1 ? " (and its batch)" : "") + ": " +
                    e.what());
      }
      for (size_t i = 0; i < records.size(); ++i) {
        const auto& record = records[i];
        const auto& job = *batch[i];
        io::append_json_line(results_path, record);
        ++run.ran;
        if (record["status"] != "ok") ++run.diverged;
        if (misfit(record)) ++run.misfit;
        char text[160];
        if (misfit(record))
          std::snprintf(text, sizeof text, "%s PSNR %.2f dB, did not fit its measurement (%.1f×)",
                        job.key().c_str(), record.value("psnr", 0.0), *fit_ratio(record));
        else if (record["status"] == "ok")
          std::snprintf(text, sizeof text, "%s PSNR %.2f dB", job.key().c_str(),
                        record.value("psnr", 0.0));
        else
          std::snprintf(text, sizeof text, "%s diverged", job.key().c_str());
        progress.update(run.already_done + run.ran, text);
      }
    }
    progress.finish();
  }
  run.complete = run.already_done + run.ran == run.jobs;
  if (run.complete && options.shard.whole()) {
    const auto all = read_results(results_path);
    run.summary_markdown = write_outputs(dir, plan, index_records(plan, all.records, results_path));
  }
  return run;
}

std::string summarize_folder(const std::string& folder, const std::string& fit_model) {
  const fs::path dir(folder);
  const auto plan_path = (dir / "plan.json").string();
  if (!fs::exists(plan_path)) {
    if (fs::is_directory(dir))
      for (const auto& entry : fs::directory_iterator(dir))
        if (entry.path().filename().string().rfind("results.shard-", 0) == 0)
          throw Error(folder + " holds shard results only: merge them first (p2l eval --merge " +
                      folder + " -o " + folder + ")");
    throw Error(folder + ": no plan.json (not an evaluation folder)");
  }
  const auto plan = Plan::from_json(io::read_json(plan_path), plan_path);
  const auto results_path = (dir / "results.jsonl").string();
  auto file = read_results(results_path);
  // A half-written last line belongs to a run that --resume will finish: leave the file alone.
  if (!fit_model.empty() && add_reference_residuals(plan, file.records, fit_model) > 0 &&
      !file.partial_tail) {
    std::string lines;
    for (const auto& record : file.records) lines += record.dump() + "\n";
    io::write_text(results_path, lines);
  }
  return write_outputs(dir, plan, index_records(plan, file.records, results_path));
}

MergeReport merge_evaluations(const std::vector<std::string>& inputs, const std::string& output,
                              bool allow_partial) {
  if (inputs.empty()) throw Error("--merge: no folders");
  if (output.empty()) throw Error("--merge: no output folder (-o DIR)");
  static const std::regex kShardResults(R"(results\.(shard-\d+-of-\d+)\.jsonl)");
  struct Source {
    fs::path dir;
    std::string results, plan;
  };
  std::vector<Source> sources;
  for (const auto& input : inputs) {
    if (!fs::is_directory(input)) throw Error("--merge: " + input + " is not a folder");
    std::vector<Source> found;
    for (const auto& entry : fs::directory_iterator(input)) {
      const auto name = entry.path().filename().string();
      std::smatch match;
      if (name == "results.jsonl")
        found.push_back({input, entry.path().string(), (fs::path(input) / "plan.json").string()});
      else if (std::regex_match(name, match, kShardResults))
        found.push_back({input, entry.path().string(),
                         (fs::path(input) / ("plan." + match[1].str() + ".json")).string()});
    }
    if (found.empty())
      throw Error("--merge: " + input + " has no results.jsonl or results.shard-*");
    std::sort(found.begin(), found.end(),
              [](const Source& a, const Source& b) { return a.results < b.results; });
    sources.insert(sources.end(), found.begin(), found.end());
  }

  std::optional<Plan> plan;
  for (const auto& source : sources) {
    if (!fs::exists(source.plan))
      throw Error(source.results + ": no " + source.plan + " beside it");
    auto other = Plan::from_json(io::read_json(source.plan), source.plan);
    if (!plan) {
      plan = other;
      continue;
    }
    const auto difference = plan->difference(other);
    if (!difference.empty())
      throw Error("--merge: " + source.plan + " is another evaluation than " + sources[0].plan +
                  " (" + difference + " differ)");
  }

  // Every record with the folder it came from (its image paths are relative to it).
  std::map<std::string, std::pair<nlohmann::json, fs::path>> merged;
  MergeReport report;
  for (const auto& source : sources) {
    const auto file = read_results(source.results);
    ++report.files;
    for (const auto& [key, record] : index_records(*plan, file.records, source.results)) {
      auto [it, inserted] = merged.emplace(key, std::make_pair(record, source.dir));
      if (!inserted && !same_result(it->second.first, record))
        throw Error("--merge: job " + key + " has different results in " + source.results +
                    " and another file: were they run with different builds or --threads?");
      if (!inserted && completes(it->second.first, record)) it->second = {record, source.dir};
    }
  }
  const auto jobs = plan->jobs();
  report.jobs = static_cast<int64_t>(jobs.size());
  report.records = static_cast<int64_t>(merged.size());
  if (!allow_partial && report.records < report.jobs) {
    std::string first;
    for (const auto& job : jobs)
      if (!merged.count(job.key())) {
        first = job.key();
        break;
      }
    throw Error("--merge: " + std::to_string(report.jobs - report.records) + " of " +
                std::to_string(report.jobs) + " jobs have no result (first: " + first +
                "); run the missing shards, or pass --allow-partial");
  }

  const fs::path out(output);
  fs::create_directories(out);
  std::string lines;
  std::map<std::string, nlohmann::json> records;
  for (const auto& job : jobs) {
    auto it = merged.find(job.key());
    if (it == merged.end()) continue;
    const auto& [record, from] = it->second;
    // Images of shards in other folders come along; a folder merged into itself keeps them.
    if (!fs::equivalent(from, out))
      for (const char* field :
           {"output", "measurement_image", "naive_image", "last_finite_estimate"})
        if (record.contains(field)) {
          const auto relative = record[field].get<std::string>();
          const auto target = out / relative;
          if (fs::exists(from / relative) && !fs::exists(target)) {
            fs::create_directories(target.parent_path());
            fs::copy_file(from / relative, target);
          }
        }
    lines += record.dump() + "\n";
    records[job.key()] = record;
  }
  io::write_text((out / "results.jsonl").string(), lines);
  io::write_json((out / "plan.json").string(), plan->to_json());
  report.summary_markdown = write_outputs(out, *plan, records);
  return report;
}

}  // namespace p2l::eval
