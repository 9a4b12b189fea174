// --precision and --vae-precision: parsing and the checks that name the flag, the autoencoder's
// float32 default, the networks computing in bf16 behind a float32 interface (values and
// gradients close to float32's), and the divergence guard's hint.
// The restorations' quality in bf16 against float32 is not asserted here: it is measured over an
// evaluation plan in docs/bench.md (a posterior sample moves by tenths of a dB with its last bits).
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "p2l/error.h"
#include "p2l/eval/inputs.h"
#include "p2l/eval/results.h"
#include "p2l/eval/runner.h"
#include "p2l/io/image.h"
#include "p2l/model/precision.h"
#include "p2l/operators/measurement.h"
#include "p2l/operators/presets.h"
#include "p2l/solvers/guidance.h"
#include "error_of.h"
#include "scratch_dir.h"
#include "shipped_model.h"

namespace p2l::test {
namespace {

namespace fs = std::filesystem;
using model::Precision;

// All three networks in bf16 (the autoencoder too, which p2l keeps in float32 unless asked).
model::StableDiffusion& shipped_bf16() {
  static model::StableDiffusion sd = [] {
    model::LoadOptions load;
    load.dtype = torch::kBFloat16;
    load.vae_dtype = torch::kBFloat16;
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

TEST(Precision, AutoencoderStaysFloat32BesideReducedNetworksUnlessAsked) {
  model::LoadOptions load;
  EXPECT_EQ(load.autoencoder_dtype(), torch::kFloat);
  for (auto type : {torch::kBFloat16, torch::kHalf}) {
    load.dtype = type;
    EXPECT_EQ(load.autoencoder_dtype(), torch::kFloat);
  }
  load.dtype = torch::kDouble;  // the finite-difference tests' models stay whole
  EXPECT_EQ(load.autoencoder_dtype(), torch::kDouble);
  load.dtype = torch::kFloat;
  load.vae_dtype = torch::kBFloat16;
  EXPECT_EQ(load.autoencoder_dtype(), torch::kBFloat16);

  model::LoadOptions bf16;
  bf16.dtype = torch::kBFloat16;
  auto sd = model::load_stable_diffusion(kModel.string(), bf16);
  EXPECT_EQ(sd.dtype(), torch::kBFloat16);
  EXPECT_EQ(sd.vae_dtype(), torch::kFloat);
  EXPECT_EQ(shipped_bf16().vae_dtype(), torch::kBFloat16);
  // The float32 autoencoder is the float32 model's, to the bit.
  torch::manual_seed(2);
  const auto z = torch::randn({1, 4, 16, 16});
  const auto x = io::load_image((kModel / "test_images" / "00_google.png").string());
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(sd.decode(z), shipped().decode(z)));
  EXPECT_TRUE(torch::equal(sd.encode(x), shipped().encode(x)));
  EXPECT_FALSE(torch::equal(shipped_bf16().decode(z), shipped().decode(z)));

  // Both flags parsed and checked, each error naming its own.
  model::LoadOptions named;
  model::set_precisions(named, "bf16", "fp32");
  EXPECT_EQ(named.dtype, torch::kBFloat16);
  EXPECT_EQ(named.autoencoder_dtype(), torch::kFloat);
  const auto unknown = error_of([] {
    model::LoadOptions o;
    model::set_precisions(o, "fp32", "fp8");
  });
  EXPECT_NE(unknown.find("--vae-precision"), std::string::npos) << unknown;
  const auto fp16 = error_of([] {
    model::LoadOptions o;
    model::set_precisions(o, "fp32", "fp16");
  });
  EXPECT_NE(fp16.find("--vae-precision fp16"), std::string::npos) << fp16;
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

// Issue 27's quality target on the CPU: with the text encoder and UNet in bf16 beside a float32
// autoencoder (p2l's default for --precision bf16), each method's mean PSNR over the bundled
// model's test image 00 × the five tasks stays within 0.1 dB of float32. At kSteps DDIM steps and
// on one image, to fit CI; the same comparison at each method's default steps and on more images
// is in docs/bench.md. The all-bf16 model (autoencoder too) misses it there and here (four of the
// five methods; on image 01 alone it would not, nor at 20 or 25 steps on images 00 and 01).
constexpr int64_t kSteps = 50;

std::map<std::string, double> mean_psnr_per_method(const std::string& precision,
                                                   const std::string& vae_precision,
                                                   const fs::path& out) {
  eval::EvalOptions o;
  o.plan.model = kModel.string();
  o.plan.tasks = eval::evaluation_tasks();
  for (const auto& method : solvers::method_names())
    o.plan.methods.push_back({method, method, {}, ""});
  o.plan.images = eval::evaluation_images({(kModel / "test_images" / "00_google.png").string()},
                                          kModel.string());
  o.plan.steps = kSteps;
  o.plan.precision = precision;
  o.plan.vae_precision = vae_precision;
  o.metrics = {eval::describe_image_metric("psnr")};
  o.output = out.string();
  o.show_progress = false;
  const auto run = eval::run_evaluation(o);
  EXPECT_TRUE(run.complete);
  EXPECT_EQ(run.diverged, 0);
  std::map<std::string, std::vector<double>> psnr;
  for (const auto& r : eval::read_results((out / "results.jsonl").string()).records)
    psnr[r.at("method").get<std::string>()].push_back(r.at("psnr").get<double>());
  std::map<std::string, double> mean;
  for (const auto& [method, values] : psnr) {
    EXPECT_EQ(values.size(), 5u) << method;
    mean[method] = std::accumulate(values.begin(), values.end(), 0.0) / values.size();
  }
  return mean;
}

constexpr char kQualityDir[] = "precision_quality";

TEST(Precision, Bf16NetworksKeepEachMethodsQuality) {
  const auto& dir = scratch_dir<kQualityDir>();
  const auto fp32 = mean_psnr_per_method("fp32", "fp32", dir / "fp32");
  const auto bf16 = mean_psnr_per_method("bf16", "fp32", dir / "bf16");
  ASSERT_EQ(fp32.size(), solvers::method_names().size());
  for (const auto& [method, reference] : fp32) {
    EXPECT_LT(std::abs(bf16.at(method) - reference), 0.1)
        << method << ": fp32 " << reference << " dB, bf16 " << bf16.at(method) << " dB";
  }
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
    load.vae_dtype = load.dtype;
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
    EXPECT_NE(message.find("--precision fp32 --vae-precision fp32"), std::string::npos)
        << message;
    EXPECT_NE(message.find("bf16"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace p2l::test
