// The forward operators (SPEC §3): exact adjoints, autograd, dtype/device handling, the
// regularised solves, serialisation, presets and the errors for inputs they cannot take.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "goldens.h"
#include "p2l/error.h"
#include "p2l/io/image.h"
#include "p2l/io/safetensors.h"
#include "p2l/operators/box_inpainting.h"
#include "p2l/operators/conjugate_gradient.h"
#include "p2l/operators/denoising.h"
#include "p2l/operators/factory.h"
#include "p2l/operators/gaussian_blur.h"
#include "p2l/operators/inpainting.h"
#include "p2l/operators/measurement.h"
#include "p2l/operators/motion_blur.h"
#include "p2l/operators/noise.h"
#include "p2l/operators/presets.h"
#include "p2l/operators/prng.h"
#include "p2l/operators/random_inpainting.h"
#include "p2l/operators/resizer.h"
#include "p2l/operators/super_resolution.h"

namespace p2l::test {
namespace {

namespace fs = std::filesystem;
namespace ops = p2l::operators;
using OperatorPtr = std::shared_ptr<const ops::Operator>;

struct NamedOperator {
  std::string name;
  OperatorPtr op;
};

// One of every operator (and the variants whose code paths differ) for an H × W image.
std::vector<NamedOperator> all_operators(int64_t h, int64_t w) {
  std::vector<NamedOperator> list = {
      {"sr x2", std::make_shared<ops::SuperResolution>(2)},
      {"sr x4", std::make_shared<ops::SuperResolution>(4)},
      {"gaussian 9 s1.5", std::make_shared<ops::GaussianBlur>(9, 1.5)},
      {"motion 9", ops::MotionBlur::random(9, 0.5, 1)},
      {"motion 7x11 user", ops::MotionBlur::from_kernel(torch::rand({7, 11}, torch::kDouble), "t")},
      {"box random", ops::BoxInpainting::random(h, w, h / 2, 2, 3)},
      {"box centred", ops::BoxInpainting::centered(h, w, h / 3)},
      {"random 70%", std::make_shared<ops::RandomInpainting>(h, w, 0.7, 4)},
      {"soft mask", std::make_shared<ops::Inpainting>(torch::rand({h, w}, torch::kDouble))},
      {"denoising", std::make_shared<ops::Denoising>()},
  };
  if (h % 8 == 0 && w % 8 == 0)
    list.push_back({"sr x8", std::make_shared<ops::SuperResolution>(8)});
  return list;
}

// |⟨A x, y⟩ − ⟨x, Aᵀ y⟩| / max(|⟨A x, y⟩|, |⟨x, Aᵀ y⟩|) for random x, y in float64.
double adjoint_mismatch(const ops::Operator& op, const std::vector<int64_t>& shape) {
  auto x = torch::randn(shape, torch::kDouble);
  auto y = torch::randn(op.output_shape(shape), torch::kDouble);
  const double lhs = (op.forward(x) * y).sum().item<double>();
  const double rhs = (x * op.adjoint(y)).sum().item<double>();
  return std::abs(lhs - rhs) / std::max(std::abs(lhs), std::abs(rhs));
}

TEST(OperatorAdjoint, DotProductTestForEveryOperator) {
  torch::manual_seed(0);
  // Square single images, a non-square batch.
  for (const auto& shape : std::vector<std::vector<int64_t>>{{1, 3, 32, 32}, {3, 3, 40, 56}}) {
    for (const auto& [name, op] : all_operators(shape[2], shape[3])) {
      SCOPED_TRACE(name + " on " + c10::str(shape));
      EXPECT_LE(adjoint_mismatch(*op, shape), 1e-5);
    }
  }
}

TEST(OperatorAdjoint, DotProductTestForLargeDpsKernels) {
  // The 61×61 kernels of the 512 preset on a non-square image just large enough for them
  // (float64 depthwise convolutions are slow on the CPU; batches are covered above).
  torch::manual_seed(1);
  const std::vector<int64_t> shape = {1, 3, 32, 40};
  EXPECT_LE(adjoint_mismatch(ops::GaussianBlur(61, 3.0), shape), 1e-5);
  EXPECT_LE(adjoint_mismatch(*ops::MotionBlur::random(61, 0.5, 7), shape), 1e-5);
  EXPECT_LE(adjoint_mismatch(ops::SuperResolution(8), shape), 1e-5);
}

TEST(OperatorAdjoint, ResamplerAdjointForNonDivisibleAndUpscaling) {
  torch::manual_seed(2);
  for (double scale : {0.25, 1.0 / 3.0, 4.0}) {
    SCOPED_TRACE(scale);
    auto x = torch::randn({2, 3, 50, 38}, torch::kDouble);
    auto ax = ops::resize(x, scale);
    auto y = torch::randn(ax.sizes(), torch::kDouble);
    const double lhs = (ax * y).sum().item<double>();
    const double rhs = (x * ops::resize_adjoint(y, scale, 50, 38)).sum().item<double>();
    EXPECT_NEAR(lhs, rhs, 1e-9 * std::abs(lhs));
  }
}

TEST(OperatorAutograd, GradientsOfForwardAndAdjointAreTheOtherMap) {
  torch::manual_seed(3);
  const std::vector<int64_t> shape = {2, 3, 24, 40};
  for (const auto& [name, op] : all_operators(shape[2], shape[3])) {
    SCOPED_TRACE(name);
    auto x = torch::randn(shape, torch::kDouble).requires_grad_(true);
    auto g = torch::randn(op->output_shape(shape), torch::kDouble);
    auto vjp = torch::autograd::grad({op->forward(x)}, {x}, {g})[0];
    EXPECT_LE(relative_error(vjp, op->adjoint(g)), 1e-12);
    auto y = torch::randn(op->output_shape(shape), torch::kDouble).requires_grad_(true);
    auto h = torch::randn(shape, torch::kDouble);
    auto vjp_adj = torch::autograd::grad({op->adjoint(y)}, {y}, {h})[0];
    EXPECT_LE(relative_error(vjp_adj, op->forward(h)), 1e-12);
  }
}

TEST(OperatorDevice, OutputsFollowTheInputsDtype) {
  for (const auto& [name, op] : all_operators(16, 24)) {
    SCOPED_TRACE(name);
    for (auto dtype : {torch::kFloat, torch::kDouble}) {
      auto x = torch::randn({1, 3, 16, 24}, dtype);
      EXPECT_EQ(op->forward(x).scalar_type(), dtype);
      EXPECT_EQ(op->adjoint(op->forward(x)).scalar_type(), dtype);
    }
    // float32 and float64 agree: the constants are converted, not recomputed.
    auto x = torch::randn({1, 3, 16, 24}, torch::kDouble);
    EXPECT_LE(relative_error(op->forward(x.to(torch::kFloat)), op->forward(x)), 1e-6);
  }
}

TEST(OperatorDevice, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(4);
  for (const auto& [name, op] : all_operators(32, 48)) {
    SCOPED_TRACE(name);
    auto x = torch::randn({2, 3, 32, 48});
    auto cuda = op->forward(x.to(torch::kCUDA));
    EXPECT_TRUE(cuda.is_cuda());
    EXPECT_LE(relative_error(cuda, op->forward(x)), 1e-5);
    EXPECT_LE(relative_error(op->adjoint(cuda), op->adjoint(op->forward(x))), 1e-5);
  }
}

// ‖b − (AᵀA + λI)x‖ / ‖b‖.
double normal_residual(const ops::Operator& op, const torch::Tensor& x, const torch::Tensor& b,
                       double lambda) {
  auto r = b - op.adjoint(op.forward(x)) - lambda * x;
  return (r.norm() / b.norm()).item<double>();
}

TEST(OperatorSolve, ConjugateGradientReachesTheResidualForSrAndBlur) {
  torch::manual_seed(5);
  struct Case {
    NamedOperator op;
    double lambda;
  };
  // Small λ is the hard case (condition number ≈ 1/λ); blurs are kept to one λ because every
  // CG iteration costs two depthwise convolutions.
  const std::vector<Case> cases = {
      {{"sr x4", std::make_shared<ops::SuperResolution>(4)}, 0.01},
      {{"sr x4", std::make_shared<ops::SuperResolution>(4)}, 1.0},
      {{"sr x8", std::make_shared<ops::SuperResolution>(8)}, 0.01},
      {{"gaussian 9 s1.5", std::make_shared<ops::GaussianBlur>(9, 1.5)}, 0.1},
      {{"motion 9", ops::MotionBlur::random(9, 0.5, 2)}, 0.1}};
  for (const auto& [named, lambda] : cases) {
    for (auto dtype : {torch::kDouble, torch::kFloat}) {
      SCOPED_TRACE(named.name + " " + c10::toString(dtype) + " lambda " + std::to_string(lambda));
      auto b = torch::randn({2, 3, 24, 32}, dtype);
      auto x = named.op->solve_regularized(b, lambda, {}, 200, 1e-5);
      EXPECT_LE(normal_residual(*named.op, x, b, lambda), 1e-4);
    }
  }
}

TEST(OperatorSolve, ConjugateGradientStartsFromX0AndSolvesEachImageAlone) {
  torch::manual_seed(6);
  ops::SuperResolution op(4);
  auto normal = [&](const torch::Tensor& v) { return op.adjoint(op.forward(v)) + 0.1 * v; };
  auto b = torch::randn({2, 3, 32, 48}, torch::kDouble);
  auto batch = ops::conjugate_gradient(normal, b, {}, 300, 1e-10);
  auto first = ops::conjugate_gradient(normal, b.narrow(0, 0, 1), {}, 300, 1e-10);
  EXPECT_LE(relative_error(batch.x.narrow(0, 0, 1), first.x), 1e-8);
  // From the solution itself there is nothing left to do.
  auto warm = ops::conjugate_gradient(normal, b, batch.x, 300, 1e-8);
  EXPECT_EQ(warm.iterations, 0);
  EXPECT_LE(warm.relative_residual, 1e-8);
}

TEST(OperatorSolve, ConjugateGradientIsDifferentiable) {
  ops::SuperResolution op(2);
  auto b = torch::randn({1, 3, 16, 16}, torch::kDouble).requires_grad_(true);
  auto x = op.solve_regularized(b, 0.5, {}, 100, 1e-12);
  auto grad = torch::autograd::grad({x.sum()}, {b})[0];
  // x = M⁻¹ b with M symmetric, so ∂Σx/∂b = M⁻¹ 1.
  auto want = op.solve_regularized(torch::ones_like(b), 0.5, {}, 100, 1e-12);
  EXPECT_LE(relative_error(grad, want.detach()), 1e-8);
}

TEST(OperatorSolve, MaskAndIdentityClosedFormsAreExact) {
  torch::manual_seed(7);
  const std::vector<int64_t> shape = {2, 3, 20, 28};
  const std::vector<NamedOperator> cases = {
      {"box", ops::BoxInpainting::random(20, 28, 8, 2, 1)},
      {"random", std::make_shared<ops::RandomInpainting>(20, 28, 0.7, 1)},
      {"soft mask", std::make_shared<ops::Inpainting>(torch::rand({20, 28}, torch::kDouble))},
      {"denoising", std::make_shared<ops::Denoising>()}};
  for (const auto& [name, op] : cases) {
    SCOPED_TRACE(name);
    for (double lambda : {1e-3, 0.5, 100.0}) {
      auto b = torch::randn(shape, torch::kDouble);
      auto x = op->solve_regularized(b, lambda, {}, 0, 0);
      EXPECT_LE(normal_residual(*op, x, b, lambda), 1e-14);
    }
  }
}

TEST(OperatorSolve, RejectsNonPositiveLambda) {
  auto b = torch::randn({1, 3, 8, 8});
  for (const auto& [name, op] : all_operators(8, 8)) {
    SCOPED_TRACE(name);
    EXPECT_THROW(op->solve_regularized(b, 0.0), Error);
  }
}

TEST(OperatorJson, RoundTripRebuildsTheSameOperator) {
  torch::manual_seed(8);
  auto x = torch::randn({2, 3, 24, 40});
  for (const auto& [name, op] : all_operators(24, 40)) {
    SCOPED_TRACE(name);
    // Through text, as a measurement file does.
    const auto j = nlohmann::json::parse(op->to_json().dump());
    auto rebuilt = ops::operator_from_json(j, op->tensors());
    EXPECT_EQ(rebuilt->kind(), op->kind());
    EXPECT_EQ(rebuilt->to_json(), op->to_json());
    EXPECT_TRUE(torch::equal(rebuilt->forward(x), op->forward(x)));
  }
}

TEST(OperatorJson, GeneratedOperatorsRegenerateFromParametersAlone) {
  // Without the stored tensor, the seed (and p2l's PRNG) rebuilds kernel and mask exactly.
  auto x = torch::randn({1, 3, 24, 40});
  const std::vector<OperatorPtr> generated = {
      std::make_shared<ops::GaussianBlur>(9, 1.5), ops::MotionBlur::random(9, 0.7, 5),
      ops::BoxInpainting::random(24, 40, 10, 2, 5),
      std::make_shared<ops::RandomInpainting>(24, 40, 0.3, 5)};
  for (const auto& op : generated) {
    SCOPED_TRACE(op->kind());
    auto j = op->to_json();
    j.erase("kernel_tensor");
    j.erase("mask_tensor");
    EXPECT_TRUE(torch::equal(ops::operator_from_json(j)->forward(x), op->forward(x)));
  }
}

TEST(OperatorJson, BadJsonIsAnErrorNamingTheProblem) {
  EXPECT_THROW(ops::operator_from_json({{"kind", "sharpen"}}), Error);
  EXPECT_THROW(ops::operator_from_json({{"factor", 4}}), Error);
  EXPECT_THROW(ops::operator_from_json({{"kind", "super_resolution"}}), Error);
  EXPECT_THROW(ops::operator_from_json({{"kind", "super_resolution"}, {"factor", "four"}}), Error);
  // A named tensor that is not there, or a mask of another size.
  EXPECT_THROW(ops::operator_from_json({{"kind", "inpainting"}, {"mask_tensor", "mask"}}), Error);
  ops::RandomInpainting op(16, 16, 0.5, 1);
  auto j = op.to_json();
  j["width"] = 20;
  EXPECT_THROW(ops::operator_from_json(j, op.tensors()), Error);
}

TEST(OperatorErrors, EvenKernelSizesAreRejected) {
  EXPECT_THROW(ops::GaussianBlur(8, 1.0), Error);
  EXPECT_THROW(ops::MotionBlur::random(60, 0.5, 1), Error);
  EXPECT_THROW(ops::MotionBlur::from_kernel(torch::ones({8, 8}), "k"), Error);
  EXPECT_THROW(ops::MotionBlur::from_kernel(torch::ones({9, 8}), "k"), Error);
}

TEST(OperatorErrors, BadParametersAreRejected) {
  EXPECT_THROW(ops::SuperResolution(0), Error);
  EXPECT_THROW(ops::GaussianBlur(9, 0.0), Error);
  EXPECT_THROW(ops::MotionBlur::random(9, 1.5, 1), Error);
  EXPECT_THROW(ops::MotionBlur::from_kernel(torch::zeros({9, 9}), "k"), Error);
  EXPECT_THROW(ops::RandomInpainting(16, 16, -0.1, 1), Error);
  EXPECT_THROW(ops::RandomInpainting(16, 16, 1.01, 1), Error);
  EXPECT_THROW(ops::BoxInpainting::random(16, 16, 17, 0, 1), Error);  // larger than the image
  EXPECT_THROW(ops::BoxInpainting::random(16, 16, 12, 4, 1), Error);  // does not fit the margin
  EXPECT_THROW(ops::BoxInpainting::random(16, 16, 8, -1, 1), Error);
  EXPECT_THROW(ops::BoxInpainting::centered(16, 32, 20), Error);
  EXPECT_THROW(ops::NoiseModel::gaussian(-0.05), Error);
  EXPECT_THROW(ops::NoiseModel::poisson(0.0), Error);
}

TEST(OperatorErrors, ImagesTheOperatorCannotTakeAreRejected) {
  auto x = torch::randn({1, 3, 50, 50});
  EXPECT_THROW(ops::SuperResolution(4).forward(x), Error);  // 50 is not divisible by 4
  EXPECT_THROW(ops::SuperResolution(4).output_shape({1, 3, 48, 50}), Error);
  EXPECT_THROW(ops::GaussianBlur(61, 3.0).forward(torch::randn({1, 3, 30, 64})), Error);
  ops::RandomInpainting mask(48, 48, 0.5, 1);
  EXPECT_THROW(mask.forward(x), Error);  // mask of another size
  EXPECT_THROW(mask.solve_regularized(x, 1.0), Error);
  EXPECT_THROW(ops::Inpainting(torch::ones({2, 3, 4})), Error);  // not one value per pixel
  // Not a [B, C, H, W] floating tensor.
  for (const auto& [name, op] : all_operators(8, 8)) {
    SCOPED_TRACE(name);
    EXPECT_THROW(op->forward(torch::randn({3, 8, 8})), Error);
    EXPECT_THROW(op->forward(torch::ones({1, 3, 8, 8}, torch::kLong)), Error);
  }
}

class OperatorFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) / (std::string("p2l_operator_files_") + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(OperatorFiles, UserKernelFilesAreCheckedAndNormalised) {
  // An 8-bit PNG kernel: levels / Σ levels.
  auto levels = torch::zeros({5, 5});
  levels[2][1] = 100;
  levels[2][2] = 200;
  levels[2][3] = 100;
  io::save_png(file("k.png"), (levels / 255 * 2 - 1).unsqueeze(0));
  auto op = ops::MotionBlur::from_file(file("k.png"));
  EXPECT_TRUE(torch::allclose(op->kernel(), (levels / 400).to(torch::kDouble)));
  EXPECT_EQ(op->to_json()["source"], file("k.png"));

  EXPECT_THROW(ops::MotionBlur::from_file(file("missing.png")), Error);
  std::ofstream(file("bad.png")) << "not an image";
  EXPECT_THROW(ops::MotionBlur::from_file(file("bad.png")), Error);
  std::ofstream(file("bad.safetensors")) << "not safetensors";
  EXPECT_THROW(ops::MotionBlur::from_file(file("bad.safetensors")), Error);
  io::save_safetensors(file("two.safetensors"),
                       {{"a", torch::ones({3, 3})}, {"b", torch::ones({3, 3})}});
  EXPECT_THROW(ops::MotionBlur::from_file(file("two.safetensors")), Error);
  io::save_png(file("even.png"), torch::zeros({1, 3, 8, 8}));
  EXPECT_THROW(ops::MotionBlur::from_file(file("even.png")), Error);
}

TEST_F(OperatorFiles, UserMaskFromPng) {
  auto mask = (torch::rand({12, 20}) > 0.5).to(torch::kFloat);
  io::save_png(file("mask.png"), (mask * 2 - 1).unsqueeze(0).expand({3, 12, 20}));
  auto op = ops::Inpainting::from_file(file("mask.png"));
  EXPECT_TRUE(torch::equal(op->mask(), mask.to(torch::kDouble)));
  EXPECT_THROW(ops::Inpainting::from_file(file("missing.png")), Error);
}

TEST_F(OperatorFiles, MeasurementSaveAndLoadRebuildsTheOperator) {
  torch::manual_seed(9);
  auto x = torch::rand({1, 3, 32, 48}) * 2 - 1;
  std::shared_ptr<const ops::Operator> op = ops::MotionBlur::random(9, 0.5, 3);
  auto m = ops::measure(x, op, ops::NoiseModel::gaussian(0.05), 3);
  m.source_image = "/nowhere/x.png";
  const auto files = ops::save_measurement(m, file("sub/meas.json"));
  EXPECT_EQ(files.json, file("sub/meas.json"));
  EXPECT_TRUE(fs::exists(file("sub/meas.safetensors")));
  EXPECT_TRUE(fs::exists(file("sub/meas.png")));
  auto loaded = ops::load_measurement(files.json);
  EXPECT_TRUE(torch::equal(loaded.y, m.y));
  EXPECT_TRUE(torch::equal(ops::add_noise(loaded.op->forward(x), loaded.noise, loaded.seed), m.y));
  EXPECT_EQ(loaded.source_image, "/nowhere/x.png");
  EXPECT_EQ(loaded.height, 32);
  EXPECT_EQ(loaded.width, 48);

  // A measurement whose y does not fit the operator, and files that are not measurements.
  auto j = loaded.info;
  j["image_size"]["width"] = 40;
  std::ofstream(file("sub/wrong.json")) << j.dump();
  EXPECT_THROW(ops::load_measurement(file("sub/wrong.json")), Error);
  std::ofstream(file("other.json")) << R"({"format": "something else"})";
  EXPECT_THROW(ops::load_measurement(file("other.json")), Error);
  std::ofstream(file("broken.json")) << "{";
  EXPECT_THROW(ops::load_measurement(file("broken.json")), Error);
  EXPECT_THROW(ops::load_measurement(file("missing.json")), Error);
}

TEST(OperatorPresets, ValuesOfTheSpecTableAndTheSmallModels) {
  const auto large = ops::TaskParams::preset(ops::Preset::k512);
  EXPECT_EQ(large.sr_factor, 8);
  EXPECT_EQ(large.gaussian_kernel_size, 61);
  EXPECT_EQ(large.gaussian_sigma, 3.0);
  EXPECT_EQ(large.motion_kernel_size, 61);
  EXPECT_EQ(large.motion_intensity, 0.5);
  EXPECT_EQ(large.box_size, 128);
  EXPECT_EQ(large.box_margin, 16);
  EXPECT_EQ(large.masked_fraction, 0.7);
  const auto small = ops::TaskParams::preset(ops::Preset::k64);
  EXPECT_EQ(small.sr_factor, 4);
  EXPECT_EQ(small.gaussian_kernel_size, 9);
  EXPECT_EQ(small.gaussian_sigma, 1.0);
  EXPECT_EQ(small.box_size, 16);
  EXPECT_EQ(ops::preset_for_image(512, 512), ops::Preset::k512);
  EXPECT_EQ(ops::preset_for_image(256, 384), ops::Preset::k512);
  EXPECT_EQ(ops::preset_for_image(64, 64), ops::Preset::k64);
  // Every task's preset operator takes its own image size.
  const std::vector<std::pair<ops::Preset, int64_t>> sizes = {{ops::Preset::k512, 512},
                                                              {ops::Preset::k64, 64}};
  for (const auto& [preset, side] : sizes) {
    for (auto task :
         {ops::Task::kSuperResolution, ops::Task::kGaussianBlur, ops::Task::kMotionBlur,
          ops::Task::kBoxInpainting, ops::Task::kRandomInpainting, ops::Task::kDenoising}) {
      SCOPED_TRACE(ops::task_name(task) + " " + ops::preset_name(preset));
      auto op = ops::make_operator(task, ops::TaskParams::preset(preset), side, side, 1);
      EXPECT_EQ(op->output_shape({1, 3, side, side}).size(), 4u);
    }
  }
  EXPECT_THROW(ops::parse_task("deblur"), Error);
  EXPECT_EQ(ops::parse_task("gauss-blur"), ops::Task::kGaussianBlur);
}

TEST(OperatorPrng, SplitMix64ReferenceStreamAndSeedDerivation) {
  // The published SplitMix64 outputs for seed 0; any change here changes every saved mask.
  ops::SplitMix64 rng(0);
  EXPECT_EQ(rng.next_u64(), 0xE220A8397B1DCDAFull);
  EXPECT_EQ(rng.next_u64(), 0x6E789E6AA1B965F4ull);
  EXPECT_EQ(rng.next_u64(), 0x06C45D188009454Full);
  EXPECT_NE(ops::derive_seed(1, "noise"), ops::derive_seed(1, "random_mask"));
  EXPECT_NE(ops::derive_seed(1, "noise"), ops::derive_seed(2, "noise"));
  ops::SplitMix64 a(7);
  std::set<uint64_t> seen;
  for (int i = 0; i < 2000; ++i) seen.insert(a.below(7));
  EXPECT_EQ(seen, (std::set<uint64_t>{0, 1, 2, 3, 4, 5, 6}));
}

TEST(OperatorPrng, PoissonAndNormalMoments) {
  ops::SplitMix64 rng(11);
  for (double mean : {0.5, 4.0, 40.0, 500.0}) {
    SCOPED_TRACE(mean);
    const int n = 40000;
    double sum = 0, sum2 = 0;
    for (int i = 0; i < n; ++i) {
      const double k = static_cast<double>(rng.poisson(mean));
      sum += k;
      sum2 += k * k;
    }
    const double m = sum / n, var = sum2 / n - m * m;
    EXPECT_NEAR(m, mean, 5 * std::sqrt(mean / n));
    EXPECT_NEAR(var / mean, 1.0, 0.05);
  }
  double sum = 0, sum2 = 0;
  for (int i = 0; i < 40000; ++i) {
    const double z = rng.normal();
    sum += z;
    sum2 += z * z;
  }
  EXPECT_NEAR(sum / 40000, 0.0, 0.03);
  EXPECT_NEAR(sum2 / 40000, 1.0, 0.03);
}

TEST(OperatorNoise, GaussianAndPoissonAreSeededAndScaled) {
  auto clean = torch::zeros({1, 3, 64, 64});
  const auto g = ops::NoiseModel::gaussian(0.05);
  auto y = ops::add_noise(clean, g, 1);
  EXPECT_TRUE(torch::equal(y, ops::add_noise(clean, g, 1)));
  EXPECT_FALSE(torch::equal(y, ops::add_noise(clean, g, 2)));
  EXPECT_NEAR(y.std().item<double>(), 0.05, 0.002);
  EXPECT_NEAR(y.mean().item<double>(), 0.0, 0.002);
  EXPECT_TRUE(torch::equal(ops::add_noise(clean, ops::NoiseModel::gaussian(0), 1), clean));
  EXPECT_EQ(ops::add_noise(clean.to(torch::kDouble), g, 1).scalar_type(), torch::kDouble);

  // Poisson: unbiased on [−1, 1] away from the clamps, noisier for a lower rate.
  auto grey = torch::full({1, 3, 64, 64}, 0.2);
  auto low = ops::add_noise(grey, ops::NoiseModel::poisson(0.1), 3);
  auto high = ops::add_noise(grey, ops::NoiseModel::poisson(10.0), 3);
  EXPECT_NEAR(high.mean().item<double>(), 0.2, 0.01);
  EXPECT_GT((low - grey).std().item<double>(), 3 * (high - grey).std().item<double>());
  EXPECT_LE(low.max().item<double>(), 1.0);
  EXPECT_GE(low.min().item<double>(), -1.0);
  EXPECT_EQ(ops::NoiseModel::from_json(ops::NoiseModel::poisson(2).to_json()).rate, 2.0);
  EXPECT_THROW(ops::NoiseModel::from_json({{"kind", "speckle"}}), Error);
}

TEST(OperatorInpaint, RandomMasksHaveTheExactFractionInEveryChannel) {
  ops::RandomInpainting op(30, 40, 0.7, 12);
  EXPECT_EQ(op.mask().sum().item<double>(), 1200 - 840);
  auto y = op.forward(torch::ones({1, 3, 30, 40}));
  EXPECT_TRUE(torch::equal(y[0][0], y[0][1]));
  EXPECT_TRUE(torch::equal(y[0][0], y[0][2]));
  EXPECT_TRUE(torch::equal(op.mask(), ops::RandomInpainting(30, 40, 0.7, 12).mask()));
  EXPECT_FALSE(torch::equal(op.mask(), ops::RandomInpainting(30, 40, 0.7, 13).mask()));
  EXPECT_EQ(ops::RandomInpainting(10, 10, 0.29, 1).mask().sum().item<double>(), 71);
  EXPECT_EQ(ops::RandomInpainting(10, 10, 0.0, 1).mask().sum().item<double>(), 100);
  EXPECT_EQ(ops::RandomInpainting(10, 10, 1.0, 1).mask().sum().item<double>(), 0);
}

TEST(OperatorInpaint, BoxPositionsRespectTheMarginAndReachBothEnds) {
  std::set<int64_t> tops, lefts;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    auto op = ops::BoxInpainting::random(20, 24, 10, 2, seed);
    tops.insert(op->top());
    lefts.insert(op->left());
    EXPECT_EQ(op->mask().sum().item<double>(), 20 * 24 - 100);
  }
  EXPECT_EQ(*tops.begin(), 2);
  EXPECT_EQ(*tops.rbegin(), 20 - 2 - 10);
  EXPECT_EQ(*lefts.begin(), 2);
  EXPECT_EQ(*lefts.rbegin(), 24 - 2 - 10);
  auto centred = ops::BoxInpainting::centered(20, 24, 10);
  EXPECT_EQ(centred->top(), 5);
  EXPECT_EQ(centred->left(), 7);
}

TEST(OperatorBlur, MotionKernelsAreSeededNormalisedAndVaried) {
  auto a = ops::random_motion_kernel(61, 0.5, 1);
  EXPECT_TRUE(torch::equal(a, ops::random_motion_kernel(61, 0.5, 1)));
  EXPECT_FALSE(torch::equal(a, ops::random_motion_kernel(61, 0.5, 2)));
  EXPECT_NEAR(a.sum().item<double>(), 1.0, 1e-12);
  EXPECT_GE(a.min().item<double>(), 0.0);
  // A blur, not a point: the mass is spread over many pixels.
  EXPECT_GT((a > 1e-4).sum().item<int64_t>(), 20);
  EXPECT_NEAR(ops::random_motion_kernel(9, 0.0, 3).sum().item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(ops::random_motion_kernel(9, 1.0, 3).sum().item<double>(), 1.0, 1e-12);
}

TEST(OperatorBlur, GaussianKernelWithTailsBeyondTheSquareFoldsThemBack) {
  // σ = 3 needs radius 12; in a 9×9 square scipy's 'reflect' folds the tails back in, which
  // raises the border above the plain truncated Gaussian and keeps the kernel symmetric.
  auto k = ops::gaussian_kernel(9, 3.0);
  auto g = torch::exp(-torch::arange(-4, 5, torch::kDouble).pow(2) / 18);
  auto truncated = torch::outer(g, g) / torch::outer(g, g).sum();
  EXPECT_GT(k[0][0].item<double>() / k[4][4].item<double>(),
            truncated[0][0].item<double>() / truncated[4][4].item<double>());
  EXPECT_TRUE(torch::allclose(k, k.flip({0})));
  EXPECT_TRUE(torch::allclose(k, k.t()));
}

}  // namespace
}  // namespace p2l::test
