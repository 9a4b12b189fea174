// --precision: parsing and the checks that name the flag, the networks computing in bf16 behind
// a float32 interface (values and gradients close to float32's), and the divergence guard's hint.
// The restorations' quality in bf16 against float32 is not asserted here: it is measured over an
// evaluation plan in docs/bench.md (a posterior sample moves by tenths of a dB with its last bits).
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <string>

#include "p2l/error.h"
#include "p2l/io/image.h"
#include "p2l/model/precision.h"
#include "p2l/operators/measurement.h"
#include "p2l/operators/presets.h"
#include "p2l/solvers/guidance.h"
#include "error_of.h"
#include "shipped_model.h"

namespace p2l::test {
namespace {

using model::Precision;

model::StableDiffusion& shipped_bf16() {
  static model::StableDiffusion sd = [] {
    model::LoadOptions load;
    load.dtype = torch::kBFloat16;
    return model::load_stable_diffusion(kModel.string(), load);
  }();
  return sd;
}

double relative_difference(const torch::Tensor& a, const torch::Tensor& reference) {
  return ((a - reference).norm() / reference.norm()).item<double>();
}

TEST(Precision, ParsedAndCheckedNamingTheFlag) {
  EXPECT_EQ(model::parse_precision("fp32"), Precision::kFloat32);
  EXPECT_EQ(model::parse_precision("bf16"), Precision::kBFloat16);
  EXPECT_EQ(model::parse_precision("fp16"), Precision::kFloat16);
  for (auto p : {Precision::kFloat32, Precision::kBFloat16, Precision::kFloat16})
    EXPECT_EQ(model::parse_precision(model::precision_name(p)), p);
  EXPECT_NE(error_of([] { model::parse_precision("fp8"); }).find("--precision"),
            std::string::npos);
  const auto fp16 = error_of([] { model::check_precision_supported(Precision::kFloat16, torch::kCPU); });
  EXPECT_NE(fp16.find("--precision fp16"), std::string::npos) << fp16;
  EXPECT_NE(fp16.find("CUDA"), std::string::npos) << fp16;
  EXPECT_NO_THROW(model::check_precision_supported(Precision::kFloat32, torch::kCPU));
  EXPECT_NO_THROW(model::check_precision_supported(Precision::kBFloat16, torch::kCPU));
}

TEST(Precision, Bf16NetworksBehindAFloat32InterfaceTrackFloat32) {
  auto& full = shipped();
  auto& half = shipped_bf16();
  EXPECT_EQ(half.dtype(), torch::kBFloat16);
  EXPECT_EQ(half.arithmetic_dtype(), torch::kFloat);
  EXPECT_EQ(full.dtype(), torch::kFloat);
  torch::manual_seed(0);
  const auto z = torch::randn({1, 4, 16, 16});
  torch::Tensor text32, text16;
  {
    torch::NoGradGuard no_grad;
    text32 = full.encode_prompts({"grinning face, smileys, google style"});
    text16 = half.encode_prompts({"grinning face, smileys, google style"});
  }
  EXPECT_EQ(text16.scalar_type(), torch::kFloat);
  EXPECT_LT(relative_difference(text16, text32), 3e-2);
  // ε and the decoder, forward and the input gradient the guided steps take.
  auto grad = [](model::StableDiffusion& sd, const torch::Tensor& z0, const torch::Tensor& t0,
                 const torch::Tensor& text, torch::Tensor& eps) {
    auto zz = z0.clone().requires_grad_(true);
    eps = sd.predict_noise(zz, t0, text);
    auto image = sd.decode(zz - 0.1 * eps);
    EXPECT_EQ(eps.scalar_type(), torch::kFloat);
    EXPECT_EQ(image.scalar_type(), torch::kFloat);
    return torch::autograd::grad({image.pow(2).sum()}, {zz})[0];
  };
  // Bounds from the measured spread of bf16 rounding (6 noise seeds × t = 100, 500, 900 on the
  // six-style model): ε 0.6–1.6 %, the gradient through both networks' backward passes 2.4–7.3 %
  // (the first, smaller model: 2.4–5.8 %). A dtype or casting bug gives O(1).
  for (const int64_t step : {100, 500, 900}) {
    const auto t = torch::full({1}, step, torch::kLong);
    torch::Tensor eps32, eps16;
    const auto g32 = grad(full, z, t, text32, eps32);
    const auto g16 = grad(half, z, t, text32, eps16);
    EXPECT_EQ(g16.scalar_type(), torch::kFloat);
    EXPECT_LT(relative_difference(eps16, eps32), 3e-2) << "t = " << step;
    EXPECT_LT(relative_difference(g16, g32), 0.1) << "t = " << step;
  }
  const auto x = io::load_image((kModel / "test_images" / "00_google.png").string());
  torch::NoGradGuard no_grad;
  EXPECT_LT(relative_difference(half.encode(x), full.encode(x)), 3e-2);
}

// On a GPU (LibTorch 2.x: fused attention kernels): each precision's networks against the CPU's
// float32 ones on the same inputs.
TEST(Precision, CudaNetworksInEveryPrecisionTrackTheCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto& cpu = shipped();
  torch::manual_seed(1);
  const auto z = torch::randn({2, 4, 16, 16});
  const auto t = torch::full({2}, 300, torch::kLong);
  torch::NoGradGuard no_grad;
  const auto text = cpu.encode_prompts({"grinning face", ""});
  const auto eps = cpu.predict_noise(z, t, text);
  const auto image = cpu.decode(z);
  for (auto p : {Precision::kFloat32, Precision::kBFloat16, Precision::kFloat16}) {
    SCOPED_TRACE(model::precision_name(p));
    model::LoadOptions load;
    load.device = torch::kCUDA;
    load.dtype = model::scalar_type(p);
    auto sd = model::load_stable_diffusion(kModel.string(), load);
    const double tolerance = p == Precision::kFloat32 ? 2e-3 : 3e-2;  // TF32 convolutions
    const auto eps_cuda = sd.predict_noise(z.cuda(), t, text.cuda());
    EXPECT_EQ(eps_cuda.scalar_type(), torch::kFloat);
    EXPECT_LT(relative_difference(eps_cuda.cpu(), eps), tolerance);
    EXPECT_LT(relative_difference(sd.decode(z.cuda()).cpu(), image), tolerance);
    EXPECT_LT(relative_difference(sd.encode_prompts({"grinning face", ""}).cpu(), text), tolerance);
  }
}

TEST(Precision, DivergenceInReducedPrecisionSuggestsFloat32) {
  auto& sd = shipped_bf16();
  const auto x = io::load_image((kModel / "test_images" / "00_google.png").string());
  std::shared_ptr<const operators::Operator> op = operators::make_operator(
      operators::Task::kSuperResolution, operators::TaskParams::preset(operators::Preset::k64),
      64, 64, 0);
  const auto m = operators::measure(x, op, operators::NoiseModel::gaussian(0.05), 0);
  solvers::Problem p;
  p.model = &sd;
  p.op = m.op;
  p.y = m.y;
  p.height = p.width = 64;
  auto solver = solvers::make_solver("ldps", solvers::Scale::kSmall);
  solver->parameters().set("steps", 3);
  solver->parameters().set("rho", 1e30);
  try {
    solver->solve(p);
    FAIL() << "a step size of 1e30 did not diverge";
  } catch (const solvers::DivergenceError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("--precision fp32"), std::string::npos) << message;
    EXPECT_NE(message.find("bf16"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace p2l::test
