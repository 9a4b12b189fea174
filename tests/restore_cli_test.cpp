// `p2l restore` end to end through the binary on the shipped model: outputs, report, previews,
// and one-line errors for bad input (unknown method, foreign hyperparameter, wrong resolution,
// diverging step size: which also keeps the last finite estimate and a report), and an observed
// low-resolution image restored like the exact measurement it was the preview of.
#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "cli_runner.h"
#include "p2l/io/image.h"
#include "p2l/pipelines/fit.h"
#include "shipped_model.h"

namespace p2l::test {
namespace {

namespace fs = std::filesystem;

class RestoreCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           ("p2l_restore_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  // -q: progress lines off, so that stderr holds only an error.
  RunResult p2l(const std::string& args) const { return run_p2l("--threads 2 -q " + args, dir_); }
  std::string image() const { return (kModel / "test_images" / "00_google.png").string(); }
  // Degrades the shipped test image with `task`; returns the measurement JSON's path.
  std::string degrade(const std::string& task, const std::string& input = "") const {
    const auto r = p2l("degrade --task " + task + " --noise 0.05 --seed 2 " +
                       (input.empty() ? image() : input) + " -o " + path("meas"));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return path("meas.json");
  }
  RunResult restore(const std::string& args) const {
    return p2l("restore -m " + kModel.string() + " " + args);
  }

  fs::path dir_;
};

TEST_F(RestoreCli, WritesImageReportAndPreviews) {
  const auto meas = degrade("sr");
  const auto r = restore("--measurement " + meas + " --method p2l --steps 5 --seed 3 " +
                         "--preview-every 2 --prompt \"\" -o " + path("out.png"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("PSNR"), std::string::npos) << r.out;
  const auto restored = io::load_image(path("out.png"));
  EXPECT_EQ(restored.sizes(), (std::vector<int64_t>{1, 3, 64, 64}));
  const auto report = nlohmann::json::parse(slurp(path("out.json")));
  EXPECT_EQ(report["method"], "p2l");
  EXPECT_EQ(report["status"], "finished");
  EXPECT_EQ(report["task"], "super_resolution");
  EXPECT_EQ(report["parameters"]["steps"], 5);
  for (const char* key : {"rho", "prompt-iters", "prompt-lr", "lambda", "projection-every",
                          "cg-iters", "prompt-tuning", "projection", "eta"})
    EXPECT_TRUE(report["parameters"].contains(key)) << key;
  const auto& counts = report["network_evaluations"];
  EXPECT_EQ(counts["unet_forward"], 10);  // K = 1 prompt iteration + 1 latent step, 5 steps
  EXPECT_EQ(counts["unet_backward"], 10);
  EXPECT_GT(report["seconds"].get<double>(), 0);
  EXPECT_GT(report["peak_memory_mib"].get<double>(), 0);
  EXPECT_GT(report["data_residual"].get<double>(), 0);
  EXPECT_EQ(report["data_residual_per_step"].size(), 5u);
  for (const char* key : {"psnr", "ssim", "naive_psnr", "naive_ssim"})
    EXPECT_TRUE(report[key].is_number()) << key;
  for (const char* step : {"step-0002.png", "step-0004.png", "step-0005.png"})
    EXPECT_TRUE(fs::exists(dir_ / "out.preview" / step)) << step;
  EXPECT_FALSE(fs::exists(dir_ / "out.preview" / "step-0003.png"));
}

// An image the user has only in degraded form: the 8-bit preview of a synthetic SR measurement
// read back with --observed restores as well as the exact measurement does (same seed, within
// 0.5 dB), far above the naive up-sampling; without a ground truth the report has no PSNR and
// no fit check.
TEST_F(RestoreCli, ObservedLowResolutionImageRestores) {
  const auto exact = degrade("sr");
  const auto small = path("meas.png");  // 16×16, clamped to 8 bits
  ASSERT_EQ(p2l("degrade --observed --task sr --noise 0.05 " + small + " -o " + path("observed"))
                .exit_code,
            0);
  const auto run = [&](const std::string& meas, const std::string& out, bool truth) {
    const auto r = restore("--measurement " + meas + " --method resample --steps 50 --seed 1 " +
                           (truth ? "--ground-truth " + image() + " " : "") + "-o " + path(out));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(slurp(path(out.substr(0, out.size() - 4) + ".json")));
  };
  const auto from_exact = run(exact, "exact.png", true);
  const auto from_observed = run(path("observed.json"), "restored.png", true);
  EXPECT_EQ(io::load_image(path("restored.png")).sizes(), (std::vector<int64_t>{1, 3, 64, 64}));
  EXPECT_GT(from_observed["psnr"].get<double>(), from_observed["naive_psnr"].get<double>() + 3);
  EXPECT_NEAR(from_observed["psnr"].get<double>(), from_exact["psnr"].get<double>(), 0.5);
  const auto unknown = run(path("observed.json"), "unknown.png", false);
  EXPECT_FALSE(unknown.contains("psnr"));
  EXPECT_TRUE(unknown["data_residual"].is_number());
  // The fit check, given the clean image (docs/eval.md): ReSample explains the measurement; LDPS
  // without guidance (ρ = 0) does not, and restore says so.
  EXPECT_FALSE(unknown.contains("fit_ratio"));
  EXPECT_DOUBLE_EQ(
      from_exact["fit_ratio"].get<double>(),
      from_exact["data_residual"].get<double>() / from_exact["reference_residual"].get<double>());
  EXPECT_LT(from_exact["fit_ratio"].get<double>(), pipelines::kMisfitRatio);
  const auto blind = restore("--measurement " + exact + " --method ldps --rho 0 --steps 10 -o " +
                             path("blind.png"));
  ASSERT_EQ(blind.exit_code, 0) << blind.err;
  EXPECT_NE(blind.out.find("did not fit the measurement"), std::string::npos) << blind.out;
  EXPECT_GT(nlohmann::json::parse(slurp(path("blind.json")))["fit_ratio"].get<double>(),
            pipelines::kMisfitRatio);
}

TEST_F(RestoreCli, ExplicitGroundTruthAndHyperparameterFlags) {
  const auto meas = degrade("box-inpaint");
  const auto r = restore("--measurement " + meas + " --method psld --steps 3 --omega 0.5 " +
                         "--gamma 0.2 --ground-truth " + image() + " -o " + path("psld.png"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto report = nlohmann::json::parse(slurp(path("psld.json")));
  EXPECT_EQ(report["parameters"]["omega"], 0.5);
  EXPECT_EQ(report["parameters"]["gamma"], 0.2);
  EXPECT_TRUE(report["psnr"].is_number());
  const auto inf = restore("--measurement " + meas + " --method p2l --steps 2 --lambda inf " +
                           "--projection-start 0 -o " + path("inf.png"));
  ASSERT_EQ(inf.exit_code, 0) << inf.err;
  EXPECT_EQ(nlohmann::json::parse(slurp(path("inf.json")))["parameters"]["lambda"], "inf");
}

TEST_F(RestoreCli, ErrorsForBadInput) {
  const auto meas = degrade("gauss-blur");
  expect_one_line_error(restore("--measurement " + meas + " --method dps -o " + path("o.png")),
                        "unknown method 'dps'");
  expect_one_line_error(
      restore("--measurement " + meas + " --method p2l --omega 1 -o " + path("o.png")),
      "--omega is not a hyperparameter of p2l");
  expect_one_line_error(
      restore("--measurement " + meas + " --method ldps --rho abc -o " + path("o.png")),
      "--rho: 'abc' is not a number");
  expect_one_line_error(
      restore("--measurement " + meas + " --method ldps --steps 2.5 -o " + path("o.png")),
      "--steps must be a whole number");
  expect_one_line_error(restore("--measurement " + path("missing.json") + " -o " + path("o.png")),
                        "missing.json");
  EXPECT_FALSE(fs::exists(path("o.png")));
  // -o meas.png would write its report to meas.json: refused, the measurement kept.
  expect_one_line_error(restore("--measurement " + meas + " --method ldps -o " + path("meas.png")),
                        "would overwrite the measurement");
  expect_one_line_error(
      restore("--measurement " + meas + " --method ldps --report " + meas + " -o " + path("o.png")),
      "would overwrite the measurement");
  EXPECT_EQ(nlohmann::json::parse(slurp(meas))["format"], "p2l-measurement");
  // A measurement of a 32×32 image does not fit the 64×64 model.
  io::save_png(path("small.png"), io::load_image(image()).slice(2, 0, 32).slice(3, 0, 32));
  const auto small = degrade("sr", path("small.png"));
  expect_one_line_error(restore("--measurement " + small + " --method ldps -o " + path("o.png")),
                        "the model works at 64x64");
}

TEST_F(RestoreCli, DivergenceNamesTheStepAndKeepsTheLastFiniteEstimate) {
  const auto meas = degrade("sr");
  const auto r = restore("--measurement " + meas + " --method ldps --steps 10 --rho 1e30 -o " +
                         path("div.png"));
  expect_one_line_error(r, "diverged at step");
  EXPECT_FALSE(fs::exists(path("div.png")));
  EXPECT_TRUE(fs::exists(path("div.last-finite.png")));
  const auto report = nlohmann::json::parse(slurp(path("div.json")));
  EXPECT_EQ(report["status"], "diverged");
  EXPECT_GE(report["step"].get<int>(), 1);
  // A batched solve keeps every sample's last finite estimate, side by side in one picture.
  const auto batched = restore("--measurement " + meas + " --method ldps --steps 10 --rho 1e30 " +
                               "--samples 3 -o " + path("divs.png"));
  expect_one_line_error(batched, "diverged at step");
  const auto last = io::load_image(path("divs.last-finite.png"));
  EXPECT_EQ(last.size(3), 3 * 64 + 4 * 2);  // three 64² cells with 2-px gaps
  EXPECT_EQ(nlohmann::json::parse(slurp(path("divs.json")))["status"], "diverged");
}

TEST_F(RestoreCli, DemoWritesMontageAndTable) {
  const auto r = p2l("demo -m " + kModel.string() + " --tasks sr,box-inpaint --methods ldps,p2l " +
                     "--steps 3 -o " + path("demo.png"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| sr | p2l |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| box-inpaint | (naive) |"), std::string::npos) << r.out;
  // 2 rows (tasks) × 5 columns (clean, measurement, naive, 2 methods) of 64² cells, 2-px gaps.
  const auto montage = io::load_image(path("demo.png"));
  EXPECT_EQ(montage.size(2), 2 * 64 + 3 * 2);
  EXPECT_EQ(montage.size(3), 5 * 64 + 6 * 2);
  const auto table = nlohmann::json::parse(slurp(path("demo.json")));
  ASSERT_EQ(table["results"].size(), 4u);
  EXPECT_EQ(table["results"][0]["parameters"]["steps"], 3);
  // The demo is an evaluation of one image: its records are in OUT.runs/.
  EXPECT_EQ(count_occurrences(slurp(path("demo.runs/results.jsonl")), "\n"), 4u);
  EXPECT_TRUE(fs::exists(table["results"][3]["image"].get<std::string>()));
  expect_one_line_error(p2l("demo -m " + kModel.string() + " --methods ldps,nope"),
                        "unknown method 'nope'");
}

TEST_F(RestoreCli, SweepTabulatesEveryGridPoint) {
  const auto sweep = "sweep -m " + kModel.string() + " --method ldps --tasks sr --grid rho=0.5,2 " +
                     "--grid steps=2,3 --images " + image() + " -o " + path("sweep");
  const auto r = p2l(sweep);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto table = slurp(path("sweep.md"));
  EXPECT_NE(table.find("| sr | 0.5 | 2 |"), std::string::npos) << table;
  EXPECT_NE(table.find("| sr | 2 | 3 |"), std::string::npos) << table;
  const auto runs = nlohmann::json::parse(slurp(path("sweep.json")))["runs"];
  ASSERT_EQ(runs.size(), 4u);
  for (const auto& run : runs) EXPECT_TRUE(run["psnr"].is_number()) << run.dump();
  // The plot: PSNR against rho, one line per value of the second axis, a marker per point.
  const auto svg = slurp(path("sweep.svg"));
  EXPECT_EQ(count_occurrences(svg, "<polyline"), 2u) << svg;
  EXPECT_EQ(count_occurrences(svg, "<circle"), 4u) << svg;
  EXPECT_NE(svg.find(">sr, steps 2</text>"), std::string::npos) << svg;
  expect_one_line_error(p2l("sweep -m " + kModel.string() + " --method ldps --grid omega=1"),
                        "--grid omega is not a hyperparameter of ldps");

  // A sweep is an evaluation with a column per grid point: its records are in OUT.runs/, and an
  // interrupted sweep resumed runs only what is missing, to the same numbers.
  const auto records_path = path("sweep.runs/results.jsonl");
  const auto records = slurp(records_path);
  ASSERT_EQ(count_occurrences(records, "\n"), 4u);
  EXPECT_NE(records.find("\"label\":\"rho-0.5_steps-3\""), std::string::npos) << records;
  std::ofstream(records_path, std::ios::trunc)
      << records.substr(0, records.find('\n', records.find('\n') + 1) + 1);  // two of four
  const auto resumed = p2l(sweep + " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const auto again = nlohmann::json::parse(slurp(path("sweep.json")))["runs"];
  ASSERT_EQ(again.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(again[i]["psnr"], runs[i]["psnr"]) << i;
  // Without --resume it starts afresh, but never removes what it did not write.
  std::ofstream(path("sweep.runs/notes.txt")) << "mine";
  expect_one_line_error(p2l(sweep), "notes.txt, which no evaluation wrote");
  EXPECT_TRUE(fs::exists(records_path));
}

}  // namespace
}  // namespace p2l::test
