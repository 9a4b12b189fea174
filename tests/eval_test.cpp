// `p2l eval` end to end through the binary on the shipped model (2 images × 2 tasks × 2 methods,
// 3 steps): an interrupted and resumed run, merged shards (--shard, the MPI environment,
// scripts/eval_mpirun.sh) all reproduce the uninterrupted run's records and summary (time
// aside), a restoration that ignores its measurement is flagged, and bad input fails with one
// line.
#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "cli_runner.h"
#include "p2l/error.h"
#include "p2l/eval/inputs.h"
#include "p2l/eval/plan.h"
#include "p2l/eval/results.h"
#include "p2l/eval/sweep.h"
#include "p2l/io/image.h"
#include "p2l/pipelines/fit.h"
#include "shipped_model.h"

namespace p2l::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kScript = fs::path(P2L_MODELS_DIR).parent_path() / "scripts" / "eval_mpirun.sh";

// Two images, two tasks, a method and a variant (the ablation without projection), 3 steps:
// 8 jobs. The seed is not 0 so that a default seed would show.
std::string plan_args(const std::string& tasks = "sr,gauss-blur") {
  const auto images = kModel / "test_images";
  return "-m " + kModel.string() + " --images " + (images / "00_google.png").string() + " " +
         (images / "01_twitter.png").string() + " --tasks " + tasks +
         " --methods ldps --variant p2l-prompt-only=p2l:projection=0 --steps 3 --seed 7";
}
constexpr int kJobs = 8;

std::vector<json> read_lines(const fs::path& path) {
  std::vector<json> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  return lines;
}

std::map<std::string, json> by_key(const std::vector<json>& records) {
  std::map<std::string, json> map;
  for (const auto& r : records)
    map[r["image"].get<std::string>() + "|" + r["task"].get<std::string>() + "|" +
        r["label"].get<std::string>()] = r;
  return map;
}

// A record or summary without its wall-clock times.
json without_time(json j) {
  if (j.is_object()) {
    j.erase("seconds");
    for (auto& [key, value] : j.items()) value = without_time(value);
  } else if (j.is_array()) {
    for (auto& value : j) value = without_time(value);
  }
  return j;
}

// summary.csv without its last two columns (seconds_mean, seconds_std).
std::string csv_without_time(const std::string& csv) {
  std::istringstream in(csv);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    for (int i = 0; i < 2; ++i) line = line.substr(0, line.rfind(','));
    out += line + "\n";
  }
  return out;
}

// summary.md with the last cell (s / image) of every table line cut.
std::string md_without_time(const std::string& md) {
  std::istringstream in(md);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] == '|')
      line = line.substr(0, line.rfind('|', line.size() - 2) + 1);
    out += line + "\n";
  }
  return out;
}

// Every record of `b` equals the one of `a` with the same key (time aside, metrics exactly).
void expect_same_records(const fs::path& a, const fs::path& b) {
  const auto ra = by_key(read_lines(a)), rb = by_key(read_lines(b));
  ASSERT_EQ(ra.size(), rb.size());
  for (const auto& [key, record] : ra) {
    ASSERT_TRUE(rb.count(key)) << key;
    EXPECT_EQ(without_time(record), without_time(rb.at(key))) << key;
    EXPECT_EQ(record["psnr"], rb.at(key)["psnr"]) << key;  // bit for bit, not approximately
  }
}

void expect_same_summary(const fs::path& a, const fs::path& b) {
  EXPECT_EQ(without_time(json::parse(slurp(a / "summary.json"))),
            without_time(json::parse(slurp(b / "summary.json"))));
  EXPECT_EQ(csv_without_time(slurp(a / "summary.csv")), csv_without_time(slurp(b / "summary.csv")));
  EXPECT_EQ(md_without_time(slurp(a / "summary.md")), md_without_time(slurp(b / "summary.md")));
}

// Sets environment variables for the children started while it lives.
class ScopedEnvironment {
 public:
  explicit ScopedEnvironment(std::map<std::string, std::string> values)
      : values_(std::move(values)) {
    for (const auto& [name, value] : values_) setenv(name.c_str(), value.c_str(), 1);
  }
  ~ScopedEnvironment() {
    for (const auto& [name, value] : values_) unsetenv(name.c_str());
  }

 private:
  std::map<std::string, std::string> values_;
};

bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');)
    if (!dir.empty() && ::access((fs::path(dir) / program).c_str(), X_OK) == 0) return true;
  return false;
}

class EvalCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           ("p2l_eval_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // A test run inside a SLURM array or under mpirun must not shard the runs below.
    for (const char* name :
         {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
          "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE"})
      unsetenv(name);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path path(const std::string& name) const { return dir_ / name; }
  // -q: no progress lines, so that stderr holds only an error. One thread: a job of 3 steps is
  // too small to gain from two, two OpenMP threads crawl when the cores are busy, and the
  // mpirun ranks (one thread each) then compute the same bits as these runs.
  RunResult p2l(const std::string& args, bool quiet = true) const {
    return run_p2l(std::string("--threads 1 ") + (quiet ? "-q " : "") + args, dir_);
  }
  RunResult eval(const std::string& args) const { return p2l("eval " + plan_args() + " " + args); }

  fs::path dir_;
};

TEST_F(EvalCli, ResumedRunGivesTheUninterruptedRunsResultsAndSummary) {
  const auto full = path("full");
  const auto r = p2l("eval " + plan_args() + " -o " + full.string(), /*quiet=*/false);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // One progress line for the whole evaluation, none per solver.
  EXPECT_NE(r.err.find("eval 8/8 (100%)"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("ldps 3/3"), std::string::npos) << r.err;
  // Three steps do not get near the measurement: every job is flagged (see the fit test below).
  EXPECT_NE(r.out.find("| sr | p2l-prompt-only | 2 (2 did not fit) |"), std::string::npos) << r.out;

  const auto records = read_lines(full / "results.jsonl");
  ASSERT_EQ(records.size(), size_t(kJobs));
  for (const auto& rec : records) {
    EXPECT_EQ(rec["status"], "ok");
    for (const char* key : {"psnr", "ssim", "naive_psnr", "naive_ssim", "data_residual",
                            "reference_residual", "fit_ratio", "seconds"})
      EXPECT_TRUE(rec[key].is_number()) << key << " " << rec.dump();
    EXPECT_EQ(rec["parameters"]["steps"], 3);
    EXPECT_GT(rec["network_evaluations"]["unet_forward"].get<int>(), 0);
    EXPECT_TRUE(fs::exists(full / rec["output"].get<std::string>())) << rec["output"];
    EXPECT_TRUE(fs::exists(full / rec["measurement_image"].get<std::string>()));
    EXPECT_TRUE(fs::exists(full / rec["naive_image"].get<std::string>()));
    if (rec["label"] == "p2l-prompt-only") {
      EXPECT_EQ(rec["method"], "p2l");
      EXPECT_EQ(rec["overrides"]["projection"], 0);
      EXPECT_EQ(rec["parameters"]["projection"], 0);
    }
  }
  EXPECT_TRUE(fs::exists(full / "images" / "sr" / "ldps" / "00_google.png"));
  EXPECT_TRUE(fs::exists(full / "images" / "gauss-blur" / "measurement" / "01_twitter.png"));
  // Every method of an image × task sees the same measurement and solver seed.
  const auto keyed = by_key(records);
  const auto& a = keyed.at("00_google.png|sr|ldps");
  const auto& b = keyed.at("00_google.png|sr|p2l-prompt-only");
  EXPECT_EQ(a["measurement_seed"], b["measurement_seed"]);
  EXPECT_EQ(a["seed"], b["seed"]);
  EXPECT_EQ(a["naive_psnr"], b["naive_psnr"]);
  EXPECT_NE(a["seed"], keyed.at("01_twitter.png|sr|ldps")["seed"]);
  EXPECT_NE(a["seed"], keyed.at("00_google.png|gauss-blur|ldps")["seed"]);

  const auto summary = json::parse(slurp(full / "summary.json"));
  ASSERT_EQ(summary["tasks"].size(), 2u);
  EXPECT_EQ(summary["tasks"][0]["task"], "sr");  // task order, then method order, as given
  EXPECT_EQ(summary["tasks"][0]["methods"][1]["label"], "p2l-prompt-only");
  EXPECT_EQ(summary["tasks"][0]["methods"][0]["n"], 2);
  EXPECT_EQ(summary["tasks"][0]["naive"]["n"], 2);
  // FD-emoji (the model ships its network): the number `p2l score` gives for the same images.
  ASSERT_EQ(summary["set_metrics"], json::array({"fd_emoji"}));
  const auto images = kModel / "test_images";
  for (const auto& [column, entry] : std::vector<std::pair<std::string, json>>{
           {"ldps", summary["tasks"][0]["methods"][0]}, {"naive", summary["tasks"][0]["naive"]}}) {
    const auto scores = path("score_" + column + ".json");
    const auto scored = p2l("score --reference " + (images / "00_google.png").string() + " " +
                            (images / "01_twitter.png").string() + " --images " +
                            (full / "images" / "sr" / column).string() + " --fd-emoji " +
                            (kModel / "fd_emoji").string() + " --json " + scores.string());
    ASSERT_EQ(scored.exit_code, 0) << scored.err;
    const double expected = json::parse(slurp(scores))["fd_emoji"].get<double>();
    EXPECT_GT(expected, 0);
    // The summary takes features one image at a time, `score` a batch of two, and the CPU
    // convolutions of the two batch sizes may round differently: on an AMD EPYC machine the
    // distances differed by 1.2e-6 relative (a wrong image set changes them by far more).
    EXPECT_NEAR(entry["fd_emoji"].get<double>(), expected, 1e-4 * expected) << column;
  }
  EXPECT_NE(slurp(full / "summary.md").find("FD-emoji"), std::string::npos);
  // Montage: rows are the 2 images; columns clean | measurement | naive | 2 methods.
  const auto montage = io::load_image((full / "montage_sr.png").string());
  EXPECT_EQ(montage.size(2), 2 * 64 + 3 * 2);
  EXPECT_EQ(montage.size(3), 5 * 64 + 6 * 2);

  // Interrupted after 3 jobs, killed in the middle of writing the 4th line.
  const auto resumed = path("resumed");
  const auto part = eval("--max-jobs 3 -o " + resumed.string());
  ASSERT_EQ(part.exit_code, 0) << part.err;
  EXPECT_NE(part.out.find("--resume"), std::string::npos) << part.out;
  EXPECT_FALSE(fs::exists(resumed / "summary.json"));
  ASSERT_EQ(read_lines(resumed / "results.jsonl").size(), 3u);
  std::ofstream(resumed / "results.jsonl", std::ios::app) << R"({"image": "01_twitter.png", "ta)";
  expect_one_line_error(eval("-o " + resumed.string()), "pass --resume");
  expect_one_line_error(eval("--noise 0.1 --resume -o " + resumed.string()), "--noise differ");
  const auto rest = eval("--resume -o " + resumed.string());
  ASSERT_EQ(rest.exit_code, 0) << rest.err;
  EXPECT_NE(rest.out.find("ran 5 jobs"), std::string::npos) << rest.out;
  expect_same_records(full / "results.jsonl", resumed / "results.jsonl");  // half line gone
  expect_same_summary(full, resumed);

  // A resume of a complete run does nothing; --summarize rewrites the same summary.
  const auto again = eval("--resume -o " + resumed.string());
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("ran 0 jobs"), std::string::npos) << again.out;
  fs::remove(resumed / "summary.json");
  ASSERT_EQ(p2l("eval --summarize " + resumed.string()).exit_code, 0);
  expect_same_summary(full, resumed);

  // Carried to another machine as its records alone (scripts/results.sh's saved partial runs),
  // with some images gone: the jobs whose images are missing run again (an output; a
  // measurement, which its image × task's first method writes), and the run ends as the
  // uninterrupted one.
  const auto carried = path("carried");
  fs::copy(resumed, carried, fs::copy_options::recursive);
  for (const char* name : {"summary.json", "summary.csv", "summary.md"}) fs::remove(carried / name);
  ASSERT_TRUE(fs::remove(carried / "images" / "sr" / "measurement" / "00_google.png"));
  ASSERT_TRUE(fs::remove(carried / "images" / "gauss-blur" / "p2l-prompt-only" / "01_twitter.png"));
  const auto rerun = eval("--resume -o " + carried.string());
  ASSERT_EQ(rerun.exit_code, 0) << rerun.err;
  EXPECT_NE(rerun.out.find("ran 2 jobs"), std::string::npos) << rerun.out;
  EXPECT_EQ(read_lines(carried / "results.jsonl").size(), size_t(kJobs));
  expect_same_records(full / "results.jsonl", carried / "results.jsonl");
  expect_same_summary(full, carried);
  EXPECT_TRUE(fs::exists(carried / "images" / "sr" / "measurement" / "00_google.png"));

  // Merged shards equal the unsharded run record for record.
  const auto shards = path("shards");
  for (const char* shard : {"0/2", "1/2"}) {
    const auto s = eval("--shard " + std::string(shard) + " -o " + shards.string());
    ASSERT_EQ(s.exit_code, 0) << s.err;
    EXPECT_NE(s.out.find("--merge"), std::string::npos) << s.out;
  }
  EXPECT_EQ(read_lines(shards / "results.shard-0-of-2.jsonl").size(), size_t(kJobs / 2));
  EXPECT_FALSE(fs::exists(shards / "results.jsonl"));
  EXPECT_FALSE(fs::exists(shards / "summary.json"));  // only the merge summarises
  const auto merged = path("merged");
  const auto m = p2l("eval --merge " + shards.string() + " -o " + merged.string());
  ASSERT_EQ(m.exit_code, 0) << m.err;
  expect_same_records(full / "results.jsonl", merged / "results.jsonl");
  expect_same_summary(full, merged);
  const auto merged_records = read_lines(merged / "results.jsonl");
  for (size_t i = 0; i < merged_records.size(); ++i)
    EXPECT_EQ(merged_records[i]["job"], int(i));  // in job order
  for (const auto& rec : merged_records)          // the shard folder's images came along
    EXPECT_TRUE(fs::exists(merged / rec["output"].get<std::string>())) << rec["output"];
}

TEST_F(EvalCli, ShardFromTheEnvironmentAndMergeChecks) {
  const auto out = path("env");
  {
    ScopedEnvironment mpi({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}});
    const auto r = eval("--max-jobs 1 -o " + out.string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  auto records = read_lines(out / "results.shard-1-of-2.jsonl");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["job"], 1);  // the first job of shard 1 of 2
  EXPECT_FALSE(fs::exists(out / "results.jsonl"));
  {
    // SLURM arrays may start at 1: task 2 of 1-2 is shard 1/2. --max-jobs 0 runs nothing.
    ScopedEnvironment slurm({{"SLURM_ARRAY_TASK_ID", "2"},
                             {"SLURM_ARRAY_TASK_COUNT", "2"},
                             {"SLURM_ARRAY_TASK_MIN", "1"}});
    const auto r = eval("--max-jobs 0 -o " + path("slurm").string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::exists(path("slurm") / "plan.shard-1-of-2.json"));
    // --shard wins over the environment.
    ASSERT_EQ(eval("--shard 0/3 --max-jobs 0 -o " + path("slurm").string()).exit_code, 0);
    EXPECT_TRUE(fs::exists(path("slurm") / "plan.shard-0-of-3.json"));
  }
  {
    ScopedEnvironment bad({{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "2"}});
    expect_one_line_error(eval("-o " + path("bad").string()),
                          "OMPI_COMM_WORLD_RANK=2 is not below OMPI_COMM_WORLD_SIZE=2");
  }
  {
    ScopedEnvironment half(std::map<std::string, std::string>{{"PMI_RANK", "0"}});
    expect_one_line_error(eval("-o " + path("bad").string()), "PMI_SIZE is not");
  }

  // Merging: missing jobs are an error unless --allow-partial; conflicting duplicates always.
  expect_one_line_error(p2l("eval --merge " + out.string() + " -o " + path("m").string()),
                        "7 of 8 jobs have no result");
  const auto partial =
      p2l("eval --merge " + out.string() + " --allow-partial -o " + path("m").string());
  ASSERT_EQ(partial.exit_code, 0) << partial.err;
  EXPECT_EQ(read_lines(path("m") / "results.jsonl").size(), 1u);
  {
    // The task without a finished job has an empty naive row, not zeros.
    std::ifstream md(path("m") / "summary.md");
    int empty_rows = 0;
    for (std::string line; std::getline(md, line);)
      if (line.find("| (naive) | 0 |") != std::string::npos) {
        ++empty_rows;
        EXPECT_EQ(line.find("±"), std::string::npos) << line;
      }
    EXPECT_EQ(empty_rows, 1);
  }
  records[0]["psnr"] = records[0]["psnr"].get<double>() + 1;
  fs::copy_file(out / "plan.shard-1-of-2.json", out / "plan.shard-0-of-9.json");
  std::ofstream(out / "results.shard-0-of-9.jsonl") << records[0].dump() << "\n";
  expect_one_line_error(
      p2l("eval --merge " + out.string() + " --allow-partial -o " + path("m2").string()),
      "has different results");
  expect_one_line_error(p2l("eval --summarize " + out.string()), "merge them first");
}

TEST_F(EvalCli, MpirunScriptRunsOneShardPerRankAndMerges) {
  if (!on_path("mpirun")) GTEST_SKIP() << "mpirun is not installed (apt-get install openmpi-bin)";
  const auto out = path("mpi");
  // One task, so that the two ranks of 2 jobs each stay quick; one thread each on 2 cores.
  const std::string cmd = "P2L=" + std::string(P2L_CLI_PATH) + " NP=2 bash " + kScript.string() +
                          " " + plan_args("sr") + " --threads 1 -q -o " + out.string() + " >" +
                          path("mpi.out").string() + " 2>" + path("mpi.err").string() +
                          " </dev/null";
  const int status = std::system(cmd.c_str());
  ASSERT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0)
      << slurp(path("mpi.out")) << slurp(path("mpi.err"));
  EXPECT_EQ(read_lines(out / "results.shard-0-of-2.jsonl").size(), 2u);
  EXPECT_EQ(read_lines(out / "results.shard-1-of-2.jsonl").size(), 2u);
  const auto records = read_lines(out / "results.jsonl");
  ASSERT_EQ(records.size(), 4u);
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i]["job"], int(i));
    EXPECT_EQ(records[i]["status"], "ok");
  }
  EXPECT_EQ(json::parse(slurp(out / "summary.json"))["finished"], 4);
  EXPECT_TRUE(fs::exists(out / "montage_sr.png"));
  // Each rank took its shard from OMPI_COMM_WORLD_RANK / _SIZE: the same bits as one process.
  const auto single = path("single");
  ASSERT_EQ(p2l("eval " + plan_args("sr") + " -o " + single.string()).exit_code, 0);
  expect_same_records(single / "results.jsonl", out / "results.jsonl");
  expect_same_summary(single, out);
}

TEST_F(EvalCli, DivergedJobIsRecordedAndTheRunGoesOn) {
  const auto out = path("div");
  const auto r =
      p2l("eval -m " + kModel.string() + " --images " +
          (kModel / "test_images" / "00_google.png").string() +
          " --tasks sr --methods ldps --variant wild=ldps:rho=1e30 --steps 10 -o " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto records = by_key(read_lines(out / "results.jsonl"));
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records.at("00_google.png|sr|ldps")["status"], "ok");
  const auto& wild = records.at("00_google.png|sr|wild");
  EXPECT_EQ(wild["status"], "diverged");
  EXPECT_GE(wild["step"].get<int>(), 1);
  EXPECT_FALSE(wild.contains("psnr"));
  EXPECT_TRUE(wild["reference_residual"].is_number());  // the measurement's, as every job's
  EXPECT_FALSE(wild.contains("fit_ratio"));
  EXPECT_TRUE(wild["naive_psnr"].is_number());
  const auto summary = json::parse(slurp(out / "summary.json"));
  EXPECT_EQ(summary["diverged"], 1);
  EXPECT_EQ(summary["tasks"][0]["methods"][1]["n"], 0);
  EXPECT_NE(slurp(out / "summary.md").find("| sr | wild | 0 (1 diverged) |"), std::string::npos);
}

// --batch 3 solves the jobs of a task and method together: three images whose motion-blur
// kernels differ (one operator per sample) and whose SR operator is shared, and P2L started from
// each image's own caption (one prompt per sample); each record is the one its own solve writes,
// up to float reduction order, with the batch noted. A batch in which a sample diverges is run
// again job by job: the finished ones are kept, the diverged one recorded.
TEST_F(EvalCli, BatchedJobsGiveTheRecordsOfTheirOwnSolves) {
  const auto images = kModel / "test_images";
  const auto plan = "-m " + kModel.string() + " --images " + (images / "00_google.png").string() +
                    " " + (images / "01_twitter.png").string() + " " +
                    (images / "02_google.png").string() +
                    " --tasks motion-blur,sr --methods ldps --variant "
                    "tuned=p2l:projection-every=2 --variant captioned=p2l:prompt=@caption "
                    "--steps 4 --seed 7";
  const auto single = path("single"), batched = path("batched");
  auto r = p2l("eval " + plan + " -o " + single.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = p2l("eval " + plan + " --batch 3 -o " + batched.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto a = by_key(read_lines(single / "results.jsonl"));
  const auto b = by_key(read_lines(batched / "results.jsonl"));
  ASSERT_EQ(a.size(), 18u);
  ASSERT_EQ(b.size(), 18u);
  for (const auto& [key, record] : a) {
    ASSERT_TRUE(b.count(key)) << key;
    const auto& other = b.at(key);
    EXPECT_EQ(other["status"], "ok") << key;
    EXPECT_EQ(other["batch"], 3) << key;
    EXPECT_FALSE(record.contains("batch")) << key;
    EXPECT_NEAR(other["psnr"].get<double>(), record["psnr"].get<double>(), 1e-3) << key;
    EXPECT_NEAR(other["data_residual"].get<double>(), record["data_residual"].get<double>(),
                1e-4 * record["data_residual"].get<double>())
        << key;
    EXPECT_EQ(other["naive_psnr"], record["naive_psnr"]) << key;  // the same measurement
    EXPECT_EQ(other["network_evaluations"], record["network_evaluations"]) << key;
    EXPECT_EQ(other.value("prompt", ""), record.value("prompt", "")) << key;
  }
  const auto captions = json::parse(slurp(images / "captions.json"));
  for (const char* image : {"00_google.png", "01_twitter.png"}) {
    const auto& record = b.at(std::string(image) + "|sr|captioned");
    EXPECT_EQ(record["prompt"], captions[image]) << image;
    EXPECT_EQ(record["batch"], 3) << image;
  }
  EXPECT_NE(captions["00_google.png"], captions["01_twitter.png"]);
  // ρ = 1e30 diverges on every image: the batch falls back to single solves, all recorded.
  const auto wild = path("wild");
  r = p2l("eval -m " + kModel.string() + " --images " + (images / "00_google.png").string() +
          " " + (images / "01_twitter.png").string() +
          " --tasks sr --methods ldps --variant wild=ldps:rho=1e30 --steps 6 --batch 2 -o " +
          wild.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto w = by_key(read_lines(wild / "results.jsonl"));
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w.at("00_google.png|sr|wild")["status"], "diverged");
  EXPECT_EQ(w.at("01_twitter.png|sr|wild")["status"], "diverged");
  EXPECT_EQ(w.at("01_twitter.png|sr|ldps")["status"], "ok");
  EXPECT_EQ(w.at("01_twitter.png|sr|ldps")["batch"], 2);
}

// The records of `from` as a build before the fit check wrote them.
void write_without_fit_check(const fs::path& from, const fs::path& to) {
  std::ofstream lines(to);
  for (auto rec : read_lines(from)) {
    rec.erase("reference_residual");
    rec.erase("fit_ratio");
    lines << rec.dump() << "\n";
  }
}

// The fit check (p2l/pipelines/fit.h): ReSample at 50 steps explains its measurement, LDPS with its
// guidance switched off (ρ = 0: an unconditional sample) does not; the reference is
// ‖y − A(D(E(x)))‖ computed here from the model's autoencoder and the operator directly.
TEST_F(EvalCli, RestorationThatIgnoresItsMeasurementIsFlagged) {
  const auto out = path("fit");
  const auto image = kModel / "test_images" / "00_google.png";
  const auto r = p2l("eval -m " + kModel.string() + " --images " + image.string() +
                     " --tasks sr --methods resample --variant blind=ldps:rho=0 --steps 50 -o " +
                     out.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("1 did not fit their measurement"), std::string::npos) << r.out;
  const auto records = by_key(read_lines(out / "results.jsonl"));
  const auto& fits = records.at("00_google.png|sr|resample");
  const auto& blind = records.at("00_google.png|sr|blind");

  torch::NoGradGuard no_grad;
  auto& sd = shipped();
  const auto clean = io::load_image(image.string());
  const auto measurement =
      eval::measure_task(clean, "sr", 0.05, blind["measurement_seed"].get<uint64_t>());
  const auto autoencoded = sd.vae->decode_scaled(sd.vae->encode_mean(clean)).clamp(-1, 1);
  const double reference =
      (measurement.y - measurement.op->forward(autoencoded)).norm().item<double>();
  for (const auto* rec : {&fits, &blind}) {
    EXPECT_NEAR((*rec)["reference_residual"].get<double>(), reference, 1e-5 * reference);
    EXPECT_DOUBLE_EQ(
        (*rec)["fit_ratio"].get<double>(),
        (*rec)["data_residual"].get<double>() / (*rec)["reference_residual"].get<double>());
  }
  EXPECT_LT(fits["fit_ratio"].get<double>(), pipelines::kMisfitRatio);
  EXPECT_GT(blind["fit_ratio"].get<double>(), 2 * pipelines::kMisfitRatio);
  EXPECT_GT(fits["psnr"].get<double>(), blind["psnr"].get<double>() + 5);

  // Counted among the finished and named in the summary.
  const auto summary = json::parse(slurp(out / "summary.json"));
  EXPECT_EQ(summary["misfit"], 1);
  EXPECT_EQ(summary["fit_unchecked"], 0);
  ASSERT_EQ(summary["misfits"].size(), 1u);
  EXPECT_EQ(summary["misfits"][0]["label"], "blind");
  const auto& rows = summary["tasks"][0]["methods"];
  EXPECT_EQ(rows[0]["misfit"], 0);
  EXPECT_EQ(rows[1]["misfit"], 1);
  EXPECT_EQ(rows[1]["n"], 1);
  const auto md = slurp(out / "summary.md");
  EXPECT_NE(md.find("| sr | blind | 1 (1 did not fit) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 00_google.png | sr | blind |"), std::string::npos) << md;
  EXPECT_NE(slurp(out / "summary.csv").find("sr,blind,ldps,1,0,1,"), std::string::npos);

  // A run recorded before the check: its summary says so, and --summarize with the run's model
  // adds the check, giving the records and the summary of a run that had it.
  const auto old = path("old");
  fs::create_directories(old);
  fs::copy(out / "images", old / "images", fs::copy_options::recursive);
  fs::copy_file(out / "plan.json", old / "plan.json");
  write_without_fit_check(out / "results.jsonl", old / "results.jsonl");
  ASSERT_EQ(p2l("eval --summarize " + old.string()).exit_code, 0);
  const auto unchecked = json::parse(slurp(old / "summary.json"));
  EXPECT_EQ(unchecked["misfit"], 0);
  EXPECT_EQ(unchecked["fit_unchecked"], 2);
  EXPECT_NE(slurp(old / "summary.md").find("2 finished jobs were recorded without the fit check"),
            std::string::npos);
  const auto added = p2l("eval --summarize " + old.string() + " -m " + kModel.string());
  ASSERT_EQ(added.exit_code, 0) << added.err;
  expect_same_records(out / "results.jsonl", old / "results.jsonl");
  expect_same_summary(out, old);
  // Merging the completed records with the unchecked originals keeps the checked ones.
  const auto mixed = path("mixed");
  fs::create_directories(mixed);
  fs::copy_file(old / "plan.json", mixed / "plan.shard-0-of-1.json");
  write_without_fit_check(old / "results.jsonl", mixed / "results.shard-0-of-1.jsonl");
  const auto merged = path("merged");
  const auto m =
      p2l("eval --merge " + mixed.string() + " " + old.string() + " -o " + merged.string());
  ASSERT_EQ(m.exit_code, 0) << m.err;
  expect_same_records(out / "results.jsonl", merged / "results.jsonl");
}

TEST(EvalFit, RatioOfFinishedCheckedRecordsOnly) {
  const json checked = {{"status", "ok"}, {"data_residual", 6.0}, {"reference_residual", 2.0}};
  EXPECT_DOUBLE_EQ(*eval::fit_ratio(checked), 3.0);
  EXPECT_TRUE(eval::misfit(checked));
  auto close = checked;
  close["data_residual"] = 3.9;
  EXPECT_FALSE(eval::misfit(close));
  auto diverged = checked;
  diverged["status"] = "diverged";
  EXPECT_FALSE(eval::fit_ratio(diverged));
  auto old = checked;
  old.erase("reference_residual");
  EXPECT_FALSE(eval::fit_ratio(old));
  auto exact = checked;  // noiseless y that the autoencoder reproduces: nothing to compare with
  exact["reference_residual"] = 0.0;
  EXPECT_FALSE(eval::fit_ratio(exact));
  // A record from before the check agrees with its completed copy, not with another result.
  EXPECT_TRUE(eval::same_result(old, checked));
  EXPECT_TRUE(eval::same_result(checked, old));
  EXPECT_FALSE(eval::same_result(old, close));
}

TEST_F(EvalCli, ErrorsForBadInput) {
  // Each fails before any restoration (default tasks and methods: all five).
  const auto bad = [&](const std::string& args) {
    return p2l("eval -m " + kModel.string() + " " + args + " -o " + path("bad").string());
  };
  expect_one_line_error(bad("--shard 2/2"), "--shard '2/2': I must be below N");
  expect_one_line_error(bad("--shard 0/0"), "--shard '0/0': N must be at least 1");
  expect_one_line_error(bad("--shard 1/x"), "--shard '1/x': expected I/N");
  expect_one_line_error(bad("--tasks sr,deblur"), "unknown task 'deblur'");
  expect_one_line_error(bad("--methods ldps,dps"), "unknown method 'dps'");
  expect_one_line_error(bad("--methods none"), "no methods");
  expect_one_line_error(bad("--variant nothing"), "expected NAME=METHOD");
  expect_one_line_error(bad("--variant x=p2l:rho"), "'rho' is not key=value");
  expect_one_line_error(bad("--variant x=ldps:projection=0"),
                        "projection is not a hyperparameter of ldps");
  expect_one_line_error(bad("--variant ldps=p2l"), "'ldps' is given twice");
  expect_one_line_error(bad("--images " + path("none.png").string()), "none.png");
  expect_one_line_error(p2l("eval -o " + path("bad").string()), "--model is required");
  expect_one_line_error(
      p2l("eval --merge " + path("nowhere").string() + " -o " + path("bad").string()),
      "not a folder");
  expect_one_line_error(p2l("eval --summarize " + path("nowhere").string()), "no plan.json");
  EXPECT_FALSE(fs::exists(path("bad") / "results.jsonl"));
}

TEST_F(EvalCli, MethodsNoneKeepsOnlyTheVariants) {
  const auto out = path("variants-only");
  const auto run = p2l("eval -m " + kModel.string() +
                       " --methods none --variant only=ldps:rho=1 --max-jobs 0 -o " + out.string());
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto plan = json::parse(slurp(out / "plan.json"));
  ASSERT_EQ(plan["methods"].size(), 1u);
  EXPECT_EQ(plan["methods"][0]["label"], "only");
  EXPECT_EQ(plan["methods"][0]["method"], "ldps");
}

// P2L started from a text: the null prompt, a generic one, or each image's own caption
// (captions.json beside the images). In a batch each job starts from its own prompt.
TEST_F(EvalCli, PromptVariantsStartFromTheCaptionOrAText) {
  const auto out = path("prompts");
  const auto images = kModel / "test_images";
  const auto run = p2l("eval -m " + kModel.string() + " --images " +
                       (images / "00_google.png").string() + " " +
                       (images / "01_twitter.png").string() +
                       " --tasks sr --methods none --variant null=p2l:steps=3"
                       " --variant caption=p2l:prompt=@caption,steps=3"
                       " --variant emoji=p2l:prompt=emoji,steps=3 --batch 2 --seed 7 -o " +
                       out.string());
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto plan = json::parse(slurp(out / "plan.json"));
  EXPECT_FALSE(plan["methods"][0].contains("prompt"));  // plans without prompts read as before
  EXPECT_EQ(plan["methods"][1]["prompt"], "@caption");
  const auto captions = json::parse(slurp(images / "captions.json"));
  std::map<std::string, json> by_key;
  for (const auto& record : read_lines(out / "results.jsonl"))
    by_key[record["label"].get<std::string>() + "|" + record["image"].get<std::string>()] = record;
  ASSERT_EQ(by_key.size(), 6u);
  for (const std::string image : {"00_google.png", "01_twitter.png"}) {
    const auto& null = by_key.at("null|" + image);
    const auto& caption = by_key.at("caption|" + image);
    const auto& emoji = by_key.at("emoji|" + image);
    EXPECT_FALSE(null.contains("prompt"));
    EXPECT_EQ(caption["prompt"], captions.at(image)) << caption.dump();
    EXPECT_EQ(emoji["prompt"], "emoji");
    // Two captions are two prompts in one batch (BatchedSolve.EachSampleStartsFromItsOwnPrompt
    // checks each is its own solve); "emoji" is one prompt for a batch of two.
    EXPECT_EQ(caption["batch"], 2);
    EXPECT_EQ(emoji["batch"], 2);
    // The text condition reaches the UNet: another start, another restoration.
    EXPECT_NE(caption["data_residual"], null["data_residual"]) << image;
    EXPECT_NE(emoji["data_residual"], null["data_residual"]) << image;
  }

  const auto spec = eval::parse_variant("generic=p2l:prompt=emoji");
  EXPECT_EQ(spec.prompt, "emoji");
  EXPECT_TRUE(spec.overrides.empty());
  EXPECT_THROW(eval::parse_variant("x=p2l:prompt=a,prompt=b"), Error);
  // An image without captions.json beside it: one line, before any work.
  fs::copy_file(images / "00_google.png", path("lone.png"));
  expect_one_line_error(p2l("eval -m " + kModel.string() + " --images " +
                            path("lone.png").string() +
                            " --tasks sr --variant c=p2l:prompt=@caption -o " +
                            path("lone-run").string()),
                        "no captions.json beside it");
  EXPECT_FALSE(fs::exists(path("lone-run") / "results.jsonl"));
}

// A sweep's columns are labelled by their values, as a label may spell them.
TEST(SweepPlan, ColumnsAreLabelledByTheirValues) {
  eval::SweepOptions options;
  options.model = kModel.string();
  options.method = "p2l";
  options.grid = {"lambda=0.5,1e30,inf", "steps=2"};
  options.set = {"eta=0.5"};
  const auto plan = eval::sweep_plan(options);
  ASSERT_EQ(plan.methods.size(), 3u);
  EXPECT_EQ(plan.methods[0].label, "lambda-0.5_steps-2");
  EXPECT_EQ(plan.methods[1].label, "lambda-1e30_steps-2");
  EXPECT_EQ(plan.methods[2].label, "lambda-inf_steps-2");
  EXPECT_EQ(plan.methods[1].overrides.at("lambda"), 1e30);
  EXPECT_EQ(plan.methods[1].overrides.at("eta"), 0.5);
  options.grid = {"omega=1"};
  EXPECT_THROW(eval::sweep_plan(options), Error);  // not a hyperparameter of p2l
}

// The precisions are part of a plan: written when not float32, read back, compared on resume and
// merge; a plan from before --vae-precision ran its autoencoder in the networks' precision.
TEST(EvalPlan, PrecisionsRoundTripAndOlderPlansReadAsTheyRan) {
  eval::SweepOptions options;
  options.model = kModel.string();
  options.method = "ldps";
  options.grid = {"steps=2"};
  const auto fp32 = eval::sweep_plan(options);
  EXPECT_FALSE(fp32.to_json().contains("precision"));  // float32 plans read as before
  auto bf16 = fp32;
  bf16.precision = "bf16";
  const auto json = bf16.to_json();
  EXPECT_EQ(json.at("vae_precision"), "fp32");
  const auto back = eval::Plan::from_json(json, "plan");
  EXPECT_EQ(back.precision, "bf16");
  EXPECT_EQ(back.vae_precision, "fp32");
  EXPECT_EQ(back.difference(bf16), "");
  EXPECT_EQ(back.difference(fp32), "--precision");
  auto older = json;
  older.erase("vae_precision");
  EXPECT_EQ(eval::Plan::from_json(older, "plan").vae_precision, "bf16");
  auto vae = fp32;
  vae.vae_precision = "bf16";
  EXPECT_EQ(eval::Plan::from_json(vae.to_json(), "plan").vae_precision, "bf16");
  EXPECT_EQ(vae.difference(fp32), "--vae-precision");
}

}  // namespace
}  // namespace p2l::test
