// `p2l eval`: the evaluation harness. Images × tasks × methods (and named variants for
// ablations) into a run folder: one JSON line per finished job, restored images, a summary per
// task × method and a montage per task; resumable, shardable (--shard, SLURM, MPI) and mergeable.
// The work is done by the library (p2l/eval); this file only parses flags.
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "p2l/io/json_file.h"
#include "p2l/error.h"
#include "p2l/eval/inputs.h"
#include "p2l/eval/results.h"
#include "p2l/eval/runner.h"
#include "p2l/solvers/solver.h"

namespace p2l::cli {

namespace fs = std::filesystem;

namespace {

struct EvalArgs {
  std::string model, output, shard, summarize;
  ComputeFlags compute;
  std::vector<std::string> images, variants, merge;
  std::vector<std::string> tasks = eval::evaluation_tasks();
  std::vector<std::string> methods = solvers::method_names();
  int64_t steps = 0;
  double noise = 0.05;
  uint64_t seed = 0;
  bool resume = false, allow_partial = false;
  int64_t max_jobs = -1;
  int64_t batch = 1;
};

std::string absolute(const std::string& path) {
  return fs::absolute(path).lexically_normal().string();
}

eval::Plan plan_from(const EvalArgs& a) {
  eval::Plan plan;
  plan.model = absolute(a.model);
  plan.tasks = a.tasks;
  plan.steps = a.steps;
  plan.noise = a.noise;
  plan.seed = a.seed;
  const auto precision = precision_names(a.compute);
  plan.precision = precision.networks;
  plan.vae_precision = precision.autoencoder;
  // "none": only the variants (e.g. an ablation run beside a run of the methods themselves).
  const bool none = a.methods.size() == 1 && a.methods[0] == "none";
  if (!none)
    for (const auto& method : a.methods) {
      solvers::default_hyperparameters(method, solvers::Scale::kSmall);  // names an unknown one
      plan.methods.push_back({method, method, {}, ""});
    }
  for (const auto& variant : a.variants) plan.methods.push_back(eval::parse_variant(variant));
  plan.images = eval::evaluation_images(a.images, a.model);
  return plan;
}

void print_summary(const std::string& markdown, const std::string& folder) {
  std::cout << markdown << "\nwrote " << (fs::path(folder) / "summary.md").string()
            << ", summary.csv, summary.json and montage_TASK.png\n";
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "eval",
      "Evaluate methods on images × tasks: DIR/results.jsonl (one line per job, resumable), "
      "restored images, summary.{md,csv,json} (mean ± std per task × method) and montages; "
      "--shard / --merge to spread it over processes (docs/eval.md)");
  auto a = std::make_shared<EvalArgs>();
  cmd->add_option("-m,--model", a->model,
                  "Model folder (--summarize: the run's model, to add the fit check to records "
                  "from before it; not needed for --merge)");
  cmd->add_option("--images", a->images, "Images or folders (default: the model's test_images)");
  cmd->add_option("--tasks", a->tasks,
                  "Tasks (default: sr, gauss-blur, motion-blur, box-inpaint, "
                  "random-inpaint)")
      ->delimiter(',');
  cmd->add_option("--methods", a->methods,
                  "Methods (default: all five; none: only the --variant columns)")
      ->delimiter(',');
  cmd->add_option("--variant", a->variants,
                  "NAME=METHOD:key=value,... an extra column, e.g. p2l-neither=p2l:projection=0,"
                  "prompt-tuning=0; prompt=TEXT starts from a text condition, prompt=@caption "
                  "from each image's caption in captions.json beside it (repeatable)");
  cmd->add_option("--steps", a->steps, "DDIM steps for every method (default: each method's)")
      ->check(non_negative());
  cmd->add_option("--noise", a->noise, "Gaussian measurement noise σ_y")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", a->seed,
                  "Base seed; each job's seeds derive from it, the image's "
                  "file name and the task");
  cmd->add_option("-o,--output", a->output, "Run folder");
  cmd->add_flag("--resume", a->resume, "Skip jobs already in the folder's results");
  auto* shard =
      cmd->add_option("--shard", a->shard,
                      "I/N: run the jobs whose index ≡ I mod N (default from SLURM_ARRAY_TASK_ID/"
                      "_COUNT, OMPI_COMM_WORLD_RANK/_SIZE or PMI_RANK/_SIZE)");
  cmd->add_option("--merge", a->merge, "Merge the shard results of these folders into -o DIR")
      ->expected(1, -1);
  cmd->add_flag("--allow-partial", a->allow_partial, "--merge: accept jobs without a result");
  cmd->add_option("--summarize", a->summarize, "Only (re)write the summary of a run folder");
  add_compute_flags(cmd, a->compute);
  cmd->add_option("--batch", a->batch,
                  "Solve up to B jobs of the same task and method at once (about 1.45x the jobs "
                  "per hour per CPU core at 8, far more on a GPU; each record as its own solve "
                  "gives it, up to float rounding)")
      ->check(CLI::Range(1, 1024));
  // Stops after K jobs as if the run were killed: for testing --resume.
  cmd->add_option("--max-jobs", a->max_jobs)->group("");
  cmd->callback([a, shard] {
    if (!a->summarize.empty()) {
      // -m: the model the run used, for records from before the fit check.
      print_summary(eval::summarize_folder(a->summarize, a->model), a->summarize);
      return;
    }
    if (!a->merge.empty()) {
      if (a->output.empty()) throw Error("--merge needs -o DIR for the merged results");
      const auto report = eval::merge_evaluations(a->merge, a->output, a->allow_partial);
      std::cout << "merged " << report.records << " of " << report.jobs << " jobs from "
                << report.files << " results files\n";
      print_summary(report.summary_markdown, a->output);
      return;
    }
    if (a->model.empty()) throw Error("eval: -m/--model is required");
    if (a->output.empty()) throw Error("eval: -o/--output DIR is required");
    io::check_writable((fs::path(a->output) / "plan.json").string());
    eval::EvalOptions options;
    // The shard spec is checked before any work, as are tasks, methods and variants.
    if (shard->count() > 0)
      options.shard = eval::parse_shard(a->shard);
    else if (auto from_environment = eval::shard_from_environment())
      options.shard = *from_environment;
    options.plan = plan_from(*a);
    options.output = a->output;
    options.resume = a->resume;
    options.max_jobs = a->max_jobs;
    options.batch = a->batch;
    options.device = load_options(a->compute).device;
    const auto run = eval::run_evaluation(options);
    const auto results = (fs::path(a->output) / eval::results_file_name(options.shard)).string();
    std::cout << "ran " << run.ran << " jobs (" << run.diverged << " diverged, " << run.misfit
              << " did not fit their measurement), " << run.already_done << " were done before; "
              << run.already_done + run.ran << " of " << run.jobs << " in " << results << "\n";
    if (!run.complete)
      std::cout << "stopped early: continue with --resume\n";
    else if (!options.shard.whole())
      std::cout << "shard " << options.shard.index << "/" << options.shard.count
                << " done; when all are, merge them: p2l eval --merge " << a->output << " -o "
                << a->output << "\n";
    else
      print_summary(run.summary_markdown, a->output);
  });
}

}  // namespace p2l::cli
