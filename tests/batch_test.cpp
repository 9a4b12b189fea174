// Batched solves (Problem::seeds, `p2l restore --samples`): every method, on the shipped model,
// gives each sample of a batch what that sample's own unbatched solve with the same seed gives —
// the same latent, residuals, prompt losses and data-consistency iterations, up to the order of
// float reductions in batched kernels.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "p2l/error.h"
#include "p2l/io/image.h"
#include "p2l/operators/measurement.h"
#include "p2l/operators/presets.h"
#include "p2l/solvers/guidance.h"
#include "p2l/pipelines/restoration.h"
#include "shipped_model.h"

namespace p2l::test {
namespace {

namespace ops = p2l::operators;

ops::Measurement measure(const std::string& task) {
  const auto x = io::load_image((kModel / "test_images" / "00_google.png").string());
  std::shared_ptr<const ops::Operator> op = ops::make_operator(
      ops::parse_task(task), ops::TaskParams::preset(ops::Preset::k64), x.size(2), x.size(3), 3);
  return ops::measure(x, op, ops::NoiseModel::gaussian(0.05), 3);
}

solvers::Problem problem(const ops::Measurement& m, std::vector<uint64_t> seeds) {
  solvers::Problem p;
  p.model = &shipped();
  p.op = m.op;
  p.y = m.y;
  p.height = m.height;
  p.width = m.width;
  if (seeds.size() == 1)
    p.seed = seeds.front();
  else
    p.seeds = std::move(seeds);
  return p;
}

// Largest absolute difference relative to the reference's largest magnitude.
double relative_gap(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(1e-12, b.abs().max().item<double>());
}

TEST(BatchedSolve, EachSampleIsItsOwnUnbatchedRun) {
  const std::vector<uint64_t> seeds = {5, 8, 13};
  for (const std::string task : {"sr", "random-inpaint"}) {
    const auto m = measure(task);
    for (const auto& method : solvers::method_names()) {
      SCOPED_TRACE(method + " on " + task);
      // 6 steps with η > 0 (each sample's own step noise); P2L tunes and projects, ReSample runs
      // both its pixel- and latent-space data consistency (steps 3 and 5).
      auto solver = solvers::make_solver(method, solvers::Scale::kSmall);
      solver->parameters().set("steps", 6);
      solver->parameters().set("eta", 0.5);
      if (method == "p2l") solver->parameters().set("projection-every", 2);
      if (method == "resample") solver->parameters().set("dc-every", 2);
      const auto batch = solver->solve(problem(m, seeds));
      ASSERT_EQ(batch.samples(), 3);
      ASSERT_EQ(batch.latent.size(0), 3);
      for (size_t i = 0; i < seeds.size(); ++i) {
        SCOPED_TRACE("seed " + std::to_string(seeds[i]));
        const auto alone = solver->solve(problem(m, {seeds[i]}));
        const auto sample = batch.sample(static_cast<int64_t>(i));
        EXPECT_LT(relative_gap(sample.latent, alone.latent), 1e-4);
        EXPECT_LT(relative_gap(sample.image, alone.image), 1e-4);
        ASSERT_EQ(sample.data_residual.front().size(), alone.data_residual.front().size());
        for (size_t s = 0; s < alone.data_residual.front().size(); ++s)
          EXPECT_NEAR(sample.data_residual.front()[s], alone.data_residual.front()[s],
                      1e-4 * alone.data_residual.front()[s]);
        // The same evaluations as a solve of its own (a batched call counts once).
        if (method != "resample") {
          EXPECT_EQ(batch.counts.to_json(), alone.counts.to_json());
        }
        const auto& d = sample.diagnostics.front();
        const auto& e = alone.diagnostics.front();
        if (method == "resample") {
          EXPECT_EQ(d, e);  // each sample's own AdamW stops
        }
        if (method == "p2l") {
          const auto before = d["prompt_loss_before"].get<std::vector<double>>();
          const auto expected = e["prompt_loss_before"].get<std::vector<double>>();
          ASSERT_EQ(before.size(), expected.size());
          for (size_t s = 0; s < before.size(); ++s)
            EXPECT_NEAR(before[s], expected[s], 1e-3 * expected[s]);
        }
      }
      // Different seeds, different samples.
      EXPECT_GT(relative_gap(batch.latent[0], batch.latent[1]), 1e-2);
    }
  }
}

// Samples that start from different prompts (P2L from each image's caption in a batched
// evaluation): each is its own run with its prompt, for every method.
TEST(BatchedSolve, EachSampleStartsFromItsOwnPrompt) {
  const auto m = measure("sr");
  const std::vector<uint64_t> seeds = {5, 8};
  const std::vector<std::string> prompts = {"squared sos, alphanum, google style", ""};
  for (const auto& method : solvers::method_names()) {
    SCOPED_TRACE(method);
    auto solver = solvers::make_solver(method, solvers::Scale::kSmall);
    solver->parameters().set("steps", 4);
    auto batched = problem(m, seeds);
    batched.prompts = prompts;
    const auto batch = solver->solve(batched);
    for (size_t i = 0; i < seeds.size(); ++i) {
      SCOPED_TRACE("prompt '" + prompts[i] + "'");
      auto single = problem(m, {seeds[i]});
      single.prompt = prompts[i];
      const auto alone = solver->solve(single);
      EXPECT_LT(relative_gap(batch.sample(static_cast<int64_t>(i)).latent, alone.latent), 1e-4);
    }
    // The prompt matters: the same seed from the other prompt is another sample.
    auto swapped = problem(m, {seeds[0]});
    swapped.prompt = prompts[1];
    EXPECT_GT(relative_gap(solver->solve(swapped).latent, batch.sample(0).latent), 1e-3);
  }
  auto wrong = problem(m, seeds);
  wrong.prompts = {"one"};
  EXPECT_THROW(solvers::make_solver("ldps", solvers::Scale::kSmall)->solve(wrong), Error);
}

TEST(BatchedSolve, RestoreWithSamplesReportsEachSampleTheMeanAndTheSpread) {
  auto& sd = shipped();
  const auto x = io::load_image((kModel / "test_images" / "00_google.png").string());
  const auto m = measure("sr");
  pipelines::RestoreRequest request;
  request.method = "ldps";
  request.overrides = {{"steps", 8}};
  request.seed = 4;
  request.samples = 3;
  request.ground_truth = x;
  request.show_progress = false;
  const auto out = pipelines::restore(sd, m, request);
  ASSERT_EQ(out.samples.size(0), 3);
  EXPECT_TRUE(torch::allclose(out.image, out.samples.mean({0}, true)));
  const auto deviation = out.samples - out.samples.mean({0}, true);
  EXPECT_TRUE(torch::allclose(out.spread, (deviation.pow(2).sum({0}, true) / 2).sqrt()));
  EXPECT_GT(out.spread.mean().item<double>(), 0);
  const auto& r = out.report;
  ASSERT_EQ(r.samples.size(), 3u);
  EXPECT_EQ(r.samples[2].seed, 8u);  // seed + 2i
  EXPECT_DOUBLE_EQ(r.spread_mean, out.spread.mean().item<double>());
  // The reported metrics are of these images: the mean's squared error is at most the samples'
  // mean squared error (convexity), so its PSNR is at least the PSNR of that mean error.
  double mean_error = 0;
  for (const auto& s : r.samples) mean_error += std::pow(10.0, -s.quality->psnr / 10) / 3;
  EXPECT_GE(r.quality->psnr + 1e-9, -10 * std::log10(mean_error));
  EXPECT_GT(r.samples[0].quality->psnr, 0);
  // The report as written: the samples under "per_sample", each with its seed and quality.
  const auto written = r.to_json();
  EXPECT_EQ(written["samples"], 3);
  ASSERT_EQ(written["per_sample"].size(), 3u);
  EXPECT_EQ(written["per_sample"][2]["seed"], 8);
  EXPECT_EQ(written["per_sample"][1]["psnr"].get<double>(), r.samples[1].quality->psnr);
  // Sample 0 is the run of the seed alone.
  auto single = request;
  single.samples = 1;
  const auto alone = pipelines::restore(sd, m, single);
  EXPECT_LT(relative_gap(out.samples[0], alone.image[0]), 1e-4);
  EXPECT_NEAR(r.samples[0].quality->psnr, alone.report.quality->psnr, 1e-3);
  const auto alone_written = alone.report.to_json();
  EXPECT_FALSE(alone_written.contains("per_sample"));
  EXPECT_TRUE(alone_written.contains("data_residual_per_step"));
  auto none = request;
  none.samples = 0;
  EXPECT_THROW(pipelines::restore(sd, m, none), Error);
}

}  // namespace
}  // namespace p2l::test
