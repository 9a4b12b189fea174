// `p2l degrade` end to end through the binary: every task writes a measurement that, loaded
// back, rebuilds the operator whose A(x) (plus the seeded noise) is the saved y bit for bit;
// an observed image (--observed) is the measurement as given; every bad input is one line on
// stderr and a non-zero exit.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "cli_runner.h"
#include "p2l/io/image.h"
#include "p2l/io/safetensors.h"
#include "p2l/operators/measurement.h"
#include "p2l/operators/noise.h"

namespace p2l::test {
namespace {

namespace fs = std::filesystem;
namespace ops = p2l::operators;

// A fresh folder per test with a small non-square test image in it.
class DegradeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           ("p2l_degrade_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    torch::manual_seed(21);
    // Smooth content plus texture, 48×64 (divisible by the 64 preset's SR factor 4).
    auto ramp = torch::linspace(-0.8, 0.8, 64).view({1, 1, 1, 64}).expand({1, 3, 48, 64});
    write_image("in.png", (ramp + 0.2 * torch::rand({1, 3, 48, 64})).clamp(-1, 1));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string write_image(const std::string& name, const torch::Tensor& image) const {
    io::save_png(path(name), image);
    return path(name);
  }

  RunResult run(const std::string& args) const {
    return run_p2l("--threads 1 degrade " + args, dir_);
  }

  // Runs a degrade that must fail: one line "p2l: error: …" containing `expected`.
  void expect_error(const std::string& args, const std::string& expected) const {
    SCOPED_TRACE(args);
    expect_one_line_error(run(args), expected);
  }

  // Loads OUT.json and checks that the rebuilt operator applied to the source image, plus the
  // recorded noise with the recorded seed, gives the saved measurement exactly.
  ops::Measurement expect_reproducible(const std::string& out) const {
    auto m = ops::load_measurement(path(out + ".json"));
    EXPECT_EQ(m.source_image, fs::canonical(path("in.png")).string());
    const auto x = io::load_image(m.source_image);
    EXPECT_EQ(m.height, x.size(2));
    EXPECT_EQ(m.width, x.size(3));
    EXPECT_TRUE(torch::equal(ops::add_noise(m.op->forward(x), m.noise, m.seed), m.y));
    EXPECT_TRUE(fs::exists(path(out + ".png")));
    return m;
  }

  fs::path dir_;
};

TEST_F(DegradeCli, EveryTaskReproducesItsMeasurement) {
  auto mask = torch::ones({1, 3, 48, 64});
  mask.narrow(2, 10, 20).narrow(3, 30, 12).fill_(-1);
  write_image("mask.png", mask);
  const std::vector<std::pair<std::string, std::string>> tasks = {
      {"sr", "super_resolution"},
      {"gauss-blur", "gaussian_blur"},
      {"motion-blur", "motion_blur"},
      {"box-inpaint", "box_inpainting"},
      {"random-inpaint", "random_inpainting"},
      {"inpaint --mask " + path("mask.png"), "inpainting"},
      {"denoise", "denoising"}};
  for (const auto& [task, kind] : tasks) {
    SCOPED_TRACE(task);
    const std::string out = "m_" + task.substr(0, task.find(' '));
    const auto r =
        run("--task " + task + " --noise 0.05 --seed 11 " + path("in.png") + " -o " + path(out));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto m = expect_reproducible(out);
    EXPECT_EQ(m.op->kind(), kind);
    EXPECT_EQ(m.seed, 11u);
    EXPECT_EQ(m.noise.kind, ops::NoiseKind::kGaussian);
    EXPECT_EQ(m.noise.sigma, 0.05);
    EXPECT_EQ(m.info["task"], task.substr(0, task.find(' ')));
    EXPECT_EQ(m.info["preset"], "64");  // auto: the image is smaller than 256
    // Kernels and masks travel with the measurement.
    io::SafeTensorsFile file(path(out + ".safetensors"));
    for (const auto& [name, tensor] : m.op->tensors()) EXPECT_TRUE(file.contains(name)) << name;
  }
  // SR writes the small image as its preview.
  EXPECT_EQ(io::load_image(path("m_sr.png")).sizes(), (std::vector<int64_t>{1, 3, 12, 16}));
}

TEST_F(DegradeCli, NoiseFreeMeasurementIsExactlyAx) {
  for (const std::string task : {"sr --factor 2", "motion-blur --kernel-size 15"}) {
    SCOPED_TRACE(task);
    ASSERT_EQ(
        run("--task " + task + " --noise 0 " + path("in.png") + " -o " + path("clean")).exit_code,
        0);
    const auto m = expect_reproducible("clean");
    EXPECT_TRUE(torch::equal(m.op->forward(io::load_image(path("in.png"))), m.y));
  }
}

TEST_F(DegradeCli, SameSeedSameMeasurementOtherSeedOtherOne) {
  const std::string base = "--task random-inpaint --fraction 0.5 " + path("in.png");
  ASSERT_EQ(run(base + " --seed 5 -o " + path("a")).exit_code, 0);
  ASSERT_EQ(run(base + " --seed 5 -o " + path("b")).exit_code, 0);
  ASSERT_EQ(run(base + " --seed 6 -o " + path("c")).exit_code, 0);
  const auto a = ops::load_measurement(path("a.json"));
  const auto b = ops::load_measurement(path("b.json"));
  const auto c = ops::load_measurement(path("c.json"));
  EXPECT_TRUE(torch::equal(a.y, b.y));
  EXPECT_TRUE(torch::equal(a.op->tensors().at("mask"), b.op->tensors().at("mask")));
  EXPECT_FALSE(torch::equal(a.op->tensors().at("mask"), c.op->tensors().at("mask")));
  EXPECT_EQ(a.op->tensors().at("mask").sum().item<double>(), 48 * 64 / 2);
}

TEST_F(DegradeCli, PresetOverridesAndPoissonNoiseAreRecorded) {
  ASSERT_EQ(run("--task box-inpaint --preset 512 --box-size 20 --centered --poisson 2 " +
                path("in.png") + " -o " + path("box"))
                .exit_code,
            0);
  const auto m = expect_reproducible("box");
  EXPECT_EQ(m.info["preset"], "512");
  EXPECT_EQ(m.info["operator"]["box_size"], 20);
  EXPECT_EQ(m.info["operator"]["placement"], "centered");
  EXPECT_EQ(m.noise.kind, ops::NoiseKind::kPoisson);
  EXPECT_EQ(m.noise.rate, 2.0);
}

TEST_F(DegradeCli, UserKernelAndOutputNameConvention) {
  auto levels = torch::zeros({1, 3, 5, 5});
  levels.select(2, 2).fill_(1);  // a horizontal 5-pixel line
  write_image("line.png", levels * 2 - 1);
  // A trailing .json on -o is dropped and missing folders are created.
  const auto r = run("--task motion-blur --kernel " + path("line.png") + " " + path("in.png") +
                     " -o " + path("deep/er/meas.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("meas.json"), std::string::npos);
  for (const char* ext : {".json", ".safetensors", ".png"})
    EXPECT_TRUE(fs::exists(path(std::string("deep/er/meas") + ext))) << ext;
  const auto m = ops::load_measurement(path("deep/er/meas.json"));
  EXPECT_EQ(m.info["operator"]["source"], path("line.png"));
  auto want = torch::zeros({5, 5}, torch::kDouble);
  want.select(0, 2).fill_(0.2);
  EXPECT_TRUE(torch::allclose(m.op->tensors().at("kernel"), want));
}

// --observed: the input is y. Nothing is added to it; the operator is built for the image it
// came from, and a mask operator's y is zero where nothing was observed, as A(x) is.
TEST_F(DegradeCli, ObservedImageIsTheMeasurement) {
  const auto input = io::load_image(path("in.png"));  // 48×64
  const auto observe = [&](const std::string& task, const std::string& out) {
    const auto r =
        run("--observed --task " + task + " --noise 0.02 " + path("in.png") + " -o " + path(out));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("as observed"), std::string::npos) << r.out;
    auto m = ops::load_measurement(path(out + ".json"));  // its operator fits y's shape
    EXPECT_EQ(m.source_image, "");                        // no clean image to compare with
    EXPECT_EQ(m.info["observed"], true);
    EXPECT_EQ(m.noise.sigma, 0.02);
    return m;
  };
  // SR: without --factor, the preset whose factor makes the image its kind: 8 × 48 ≥ 256, so
  // SD's ×8 (a 384×512 image); with --factor 2, a 96×128 image of the small models' preset.
  for (const auto& [flags, factor, preset] :
       std::vector<std::tuple<std::string, int64_t, std::string>>{{"sr", 8, "512"},
                                                                  {"sr --factor 2", 2, "64"}}) {
    SCOPED_TRACE(flags);
    const auto m = observe(flags, "o_sr" + std::to_string(factor));
    EXPECT_TRUE(torch::equal(m.y, input));
    EXPECT_EQ(m.height, 48 * factor);
    EXPECT_EQ(m.width, 64 * factor);
    EXPECT_EQ(m.info["preset"], preset);
    const auto x = torch::zeros({1, 3, m.height, m.width});
    EXPECT_EQ(m.op->forward(x).sizes(), input.sizes());
  }
  for (const std::string task : {"gauss-blur", "denoise"}) {
    SCOPED_TRACE(task);
    const auto m = observe(task, "o_" + task);
    EXPECT_TRUE(torch::equal(m.y, input));  // not blurred again
    EXPECT_EQ(m.height, 48);
    EXPECT_EQ(m.info["preset"], "64");
  }
  auto mask = torch::ones({1, 3, 48, 64});
  mask.narrow(2, 10, 20).narrow(3, 30, 12).fill_(-1);
  write_image("mask.png", mask);
  for (const std::string& task :
       {"inpaint --mask " + path("mask.png"), std::string("box-inpaint --centered")}) {
    SCOPED_TRACE(task);
    const auto m = observe(task, "o_" + task.substr(0, task.find(' ')));
    const auto keep = m.op->forward(torch::ones_like(input));  // 1 observed, 0 missing
    EXPECT_GT(keep.sum().item<double>(), 0);
    EXPECT_LT(keep.sum().item<double>(), input.numel());
    EXPECT_TRUE(torch::equal(m.y, input * keep));
  }
}

TEST_F(DegradeCli, ErrorObservedWithRandomParts) {
  const auto in = path("in.png") + " -o " + path("o");
  expect_error("--observed --task random-inpaint " + in, "--task inpaint --mask FILE");
  expect_error("--observed --task motion-blur " + in, "needs the blur's kernel (--kernel FILE)");
  expect_error("--observed --task box-inpaint " + in, "pass --centered");
  EXPECT_FALSE(fs::exists(path("o.json")));
  // -o in would write y's preview over in.png itself.
  const auto before = slurp(path("in.png"));
  expect_error("--observed --task denoise " + path("in.png") + " -o " + path("in"),
               "would overwrite the input");
  EXPECT_EQ(slurp(path("in.png")), before);
}

TEST_F(DegradeCli, ErrorUnreadableImage) {
  expect_error("--task sr " + path("missing.png") + " -o " + path("o"), "no such image file");
}

TEST_F(DegradeCli, ErrorCorruptImage) {
  std::ofstream(path("corrupt.png")) << "\x89PNG\r\n\x1a\n this is not a PNG";
  expect_error("--task sr " + path("corrupt.png") + " -o " + path("o"), "cannot decode");
}

TEST_F(DegradeCli, ErrorSizeNotDivisibleBySrFactor) {
  expect_error("--task sr --factor 5 " + path("in.png") + " -o " + path("o"),
               "not divisible by the factor 5");
}

TEST_F(DegradeCli, ErrorEvenKernelSize) {
  expect_error("--task gauss-blur --kernel-size 8 " + path("in.png") + " -o " + path("o"),
               "must be odd");
}

TEST_F(DegradeCli, ErrorEvenUserKernel) {
  write_image("even.png", torch::ones({1, 3, 4, 4}));
  expect_error(
      "--task motion-blur --kernel " + path("even.png") + " " + path("in.png") + " -o " + path("o"),
      "must be odd");
}

TEST_F(DegradeCli, ErrorMissingUserKernel) {
  expect_error(
      "--task motion-blur --kernel " + path("nope.png") + " " + path("in.png") + " -o " + path("o"),
      "no such file");
}

TEST_F(DegradeCli, ErrorBadUserKernel) {
  std::ofstream(path("bad.safetensors")) << "garbage";
  expect_error("--task motion-blur --kernel " + path("bad.safetensors") + " " + path("in.png") +
                   " -o " + path("o"),
               "bad.safetensors");
}

TEST_F(DegradeCli, ErrorMaskOfWrongSize) {
  write_image("small_mask.png", torch::ones({1, 3, 32, 32}));
  expect_error(
      "--task inpaint --mask " + path("small_mask.png") + " " + path("in.png") + " -o " + path("o"),
      "the mask is 32×32 but the image is 48×64");
}

TEST_F(DegradeCli, ErrorUnknownTask) {
  expect_error("--task deblur " + path("in.png") + " -o " + path("o"), "unknown task 'deblur'");
}

TEST_F(DegradeCli, ErrorNegativeNoise) {
  expect_error("--task denoise --noise -0.1 " + path("in.png") + " -o " + path("o"),
               "sigma must be ≥ 0");
}

TEST_F(DegradeCli, ErrorFractionOutsideUnitInterval) {
  expect_error("--task random-inpaint --fraction 1.5 " + path("in.png") + " -o " + path("o"),
               "fraction must be in [0, 1]");
}

TEST_F(DegradeCli, ErrorBoxLargerThanImage) {
  expect_error("--task box-inpaint --box-size 50 " + path("in.png") + " -o " + path("o"),
               "larger than the image");
}

TEST_F(DegradeCli, ErrorIntensityOutOfRange) {
  expect_error("--task motion-blur --intensity 2 " + path("in.png") + " -o " + path("o"),
               "intensity must be in [0, 1]");
}

TEST_F(DegradeCli, ErrorFlagOfAnotherTask) {
  expect_error("--task gauss-blur --factor 4 " + path("in.png") + " -o " + path("o"),
               "--factor: only for --task sr");
}

}  // namespace
}  // namespace p2l::test
