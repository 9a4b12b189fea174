// The operators against DPS's own code (tests/goldens/ops, see its README and NOTES): the
// Resizer's outputs and tap tables, the Gaussian kernels, blurred images, inpainted images and
// the exact adjoints (autograd VJPs). Every name, shape and parameter comes from the golden set
// (op_goldens.json and the names' own pattern), so a set made the same way tests the same.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "goldens.h"
#include "p2l/error.h"
#include "p2l/io/image.h"
#include "p2l/io/safetensors.h"
#include "p2l/operators/gaussian_blur.h"
#include "p2l/operators/inpainting.h"
#include "p2l/operators/motion_blur.h"
#include "p2l/operators/resizer.h"
#include "p2l/operators/super_resolution.h"

namespace p2l::test {
namespace {

namespace fs = std::filesystem;
namespace ops = p2l::operators;

// The issue's tolerance for golden comparisons.
constexpr double kGoldenRelTol = 1e-5;

class OpGoldens {
 public:
  static const OpGoldens& get() {
    static OpGoldens instance;
    return instance;
  }
  const nlohmann::json& entries() const { return meta_.at("tensors"); }
  const nlohmann::json& entry(const std::string& name) const { return entries().at(name); }
  torch::Tensor tensor(const std::string& name) const { return file_->load(name); }
  bool has(const std::string& name) const { return file_->contains(name); }
  // Names of the tensors with this role ("input", "output", "kernel", "mask", "aux").
  std::vector<std::string> with_role(const std::string& role) const {
    std::vector<std::string> names;
    for (const auto& [name, e] : entries().items())
      if (e.value("role", "") == role) names.push_back(name);
    return names;
  }
  std::string dir() const { return dir_; }

 private:
  OpGoldens() : dir_(goldens_dir() + "/ops") {
    std::ifstream in(dir_ + "/op_goldens.json");
    if (!in) throw std::runtime_error("cannot read " + dir_ + "/op_goldens.json (set P2L_GOLDENS)");
    meta_ = nlohmann::json::parse(in);
    file_ = std::make_unique<io::SafeTensorsFile>(dir_ + "/" +
                                                  meta_.value("file", "op_goldens.safetensors"));
  }
  std::string dir_;
  nlohmann::json meta_;
  std::unique_ptr<io::SafeTensorsFile> file_;
};

::testing::AssertionResult close_to(const torch::Tensor& got, const torch::Tensor& want,
                                    const std::string& name, double rel = kGoldenRelTol) {
  if (got.sizes() != want.sizes())
    return ::testing::AssertionFailure()
           << name << ": shape " << got.sizes() << " vs golden " << want.sizes();
  const double err = relative_error(got, want);
  if (err <= rel) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << name << ": relative error " << err << " > " << rel;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "gauss_k61_s3_kernel" → (61, 3.0).
bool parse_gaussian_kernel_name(const std::string& name, int64_t* size, double* sigma) {
  static const std::regex pattern(R"(^gauss_k(\d+)_s([0-9.]+)_kernel$)");
  std::smatch m;
  if (!std::regex_match(name, m, pattern)) return false;
  *size = std::stoll(m[1]);
  *sigma = std::stod(m[2]);
  return true;
}

// "sr_x4_64_out" → ("sr", 4); "up_x4_16_out" → ("up", 4); "sr_x4_48x80_vjp" with suffix
// "vjp". DPS's nearest-neighbour "transpose" (sr_x4_64_transpose_of_out) is not an operator of
// p2l's (NOTES §7) and does not match.
bool parse_resize_name(const std::string& name, const std::string& suffix, std::string* mode,
                       int64_t* factor) {
  static const std::regex pattern(R"(^(sr|up)_x(\d+)_\d+(x\d+)?_(out|vjp)$)");
  std::smatch m;
  if (!std::regex_match(name, m, pattern) || m[4] != suffix) return false;
  *mode = m[1];
  *factor = std::stoll(m[2]);
  return true;
}

// The blur that produced a golden with a "kernel" field: the Gaussian rebuilt from the kernel's
// parameters (testing p2l's kernel too), any other kernel taken as stored.
std::unique_ptr<ops::Operator> blur_for(const std::string& kernel_name) {
  int64_t size = 0;
  double sigma = 0;
  if (parse_gaussian_kernel_name(kernel_name, &size, &sigma))
    return std::make_unique<ops::GaussianBlur>(size, sigma);
  return ops::MotionBlur::from_kernel(OpGoldens::get().tensor(kernel_name), kernel_name);
}

TEST(ResizerGolden, OutputsMatchDps) {
  const auto& g = OpGoldens::get();
  int checked = 0;
  for (const auto& name : g.with_role("output")) {
    std::string mode;
    int64_t factor = 0;
    if (!parse_resize_name(name, "out", &mode, &factor)) continue;
    SCOPED_TRACE(name);
    const auto x = g.tensor(g.entry(name).at("input").get<std::string>());
    const auto want = g.tensor(name);
    const double scale = mode == "sr" ? 1.0 / static_cast<double>(factor) : factor;
    EXPECT_TRUE(close_to(ops::resize(x, scale), want, name));
    ++checked;
    if (mode == "up") continue;
    if (x.size(2) % factor != 0 || x.size(3) % factor != 0) {
      // The SR operator takes only divisible sizes; the resampler matches DPS regardless.
      EXPECT_THROW(ops::SuperResolution(factor).forward(x), Error);
      continue;
    }
    EXPECT_TRUE(close_to(ops::SuperResolution(factor).forward(x), want, name));
  }
  EXPECT_GT(checked, 0) << "no Resizer outputs found in " << g.dir();
}

TEST(ResizerGolden, TapTablesMatchDps) {
  // resizer_<n>to<m>_fov / _weights: y[o] = Σ_t weights[o, t] · x[fov[o, t]].
  const auto& g = OpGoldens::get();
  static const std::regex pattern(R"(^resizer_(\d+)to(\d+)_fov$)");
  int checked = 0;
  for (const auto& name : g.with_role("aux")) {
    std::smatch m;
    if (!std::regex_match(name, m, pattern)) continue;
    SCOPED_TRACE(name);
    const int64_t n = std::stoll(m[1]), out = std::stoll(m[2]);
    const auto fov = g.tensor(name);
    const auto weights = g.tensor(std::regex_replace(name, std::regex("_fov$"), "_weights"));
    auto dense = torch::zeros({out, n}, torch::kDouble);
    for (int64_t o = 0; o < fov.size(0); ++o)
      for (int64_t t = 0; t < fov.size(1); ++t)
        dense[o][fov[o][t].item<int64_t>()] += weights[o][t].item<double>();
    // DPS passes 1/f for down-scaling by f and f for up-scaling.
    const double scale =
        out < n ? 1.0 / static_cast<double>(n / out) : static_cast<double>(out) / n;
    const auto ours = ops::resizer_matrix(n, scale);
    ASSERT_EQ(ours.sizes(), dense.sizes());
    EXPECT_LE((ours - dense).abs().max().item<double>(), 1e-7);
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(BlurGolden, GaussianKernelsMatchScipy) {
  const auto& g = OpGoldens::get();
  int checked = 0;
  for (const auto& name : g.with_role("kernel")) {
    int64_t size = 0;
    double sigma = 0;
    if (!parse_gaussian_kernel_name(name, &size, &sigma)) continue;
    SCOPED_TRACE(name);
    const auto want = g.tensor(name).to(torch::kDouble);
    const auto got = ops::gaussian_kernel(size, sigma);
    ASSERT_EQ(got.sizes(), want.sizes());
    // Same formula in float64; only the order of the normalising sum can differ.
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-15);
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(BlurGolden, BlurredImagesMatchDps) {
  const auto& g = OpGoldens::get();
  int checked = 0;
  for (const auto& name : g.with_role("output")) {
    const auto& e = g.entry(name);
    if (!e.contains("kernel") || ends_with(name, "_vjp")) continue;
    SCOPED_TRACE(name);
    const auto kernel_name = e["kernel"].get<std::string>();
    const auto x = g.tensor(e["input"].get<std::string>());
    EXPECT_TRUE(close_to(blur_for(kernel_name)->forward(x), g.tensor(name), name));
    // The stored kernel through p2l's convolution gives the same image.
    auto stored = ops::MotionBlur::from_kernel(g.tensor(kernel_name), kernel_name);
    EXPECT_TRUE(close_to(stored->forward(x), g.tensor(name), name + " (stored kernel)"));
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(OperatorGoldens, AdjointsMatchDpsAutogradVjps) {
  // <name>_vjp = torch.autograd.grad(A(x), x, cotangent): the exact Aᵀ, for SR and the blurs.
  const auto& g = OpGoldens::get();
  int checked = 0;
  for (const auto& name : g.with_role("output")) {
    if (!ends_with(name, "_vjp")) continue;
    SCOPED_TRACE(name);
    const auto& e = g.entry(name);
    std::unique_ptr<ops::Operator> op;
    std::string mode;
    int64_t factor = 0;
    if (e.contains("kernel"))
      op = blur_for(e["kernel"].get<std::string>());
    else if (parse_resize_name(name, "vjp", &mode, &factor) && mode == "sr")
      op = std::make_unique<ops::SuperResolution>(factor);
    ASSERT_TRUE(op) << "no operator known for " << name;
    const auto cotangent = g.tensor(e.at("input").get<std::string>());
    const auto want = g.tensor(name);
    EXPECT_TRUE(close_to(op->adjoint(cotangent), want, name));
    // Autograd through p2l's forward gives the same VJP.
    auto x = torch::zeros(want.sizes(), torch::kFloat).requires_grad_(true);
    auto vjp = torch::autograd::grad({op->forward(x)}, {x}, {cotangent})[0];
    EXPECT_TRUE(close_to(vjp, want, name + " (autograd)"));
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(InpaintGolden, MaskedImagesMatchDps) {
  const auto& g = OpGoldens::get();
  int checked = 0;
  for (const auto& name : g.with_role("output")) {
    const auto& e = g.entry(name);
    if (!e.contains("mask")) continue;
    SCOPED_TRACE(name);
    // DPS applies mask[:, 0] to every channel.
    const auto mask = g.tensor(e["mask"].get<std::string>()).select(1, 0).squeeze(0);
    ops::Inpainting op(mask);
    const auto got = op.forward(g.tensor(e.at("input").get<std::string>()));
    EXPECT_TRUE(torch::equal(got, g.tensor(name)));  // x·1 and x·0 are exact
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(BlurGolden, MotionKernelFromEightBitPngIsDpsKernelExactly) {
  // NOTES §4: DPS's kernel is its 8-bit image L divided by Σ L in float32.
  const auto& g = OpGoldens::get();
  const auto dir = fs::path(::testing::TempDir()) / "p2l_motion_kernel_png";
  fs::create_directories(dir);
  int checked = 0;
  for (const auto& name : g.with_role("aux")) {
    const std::string suffix = "_L_uint8";
    if (!ends_with(name, suffix)) continue;
    const auto kernel_name = name.substr(0, name.size() - suffix.size());
    if (!g.has(kernel_name)) continue;
    SCOPED_TRACE(name);
    const auto levels = g.tensor(name).to(torch::kFloat);
    const auto png = (dir / (kernel_name + ".png")).string();
    io::save_png(png, (levels / 255 * 2 - 1).unsqueeze(0));
    const auto op = ops::MotionBlur::from_file(png);
    EXPECT_TRUE(torch::equal(op->kernel().to(torch::kFloat), g.tensor(kernel_name)));
    // From a safetensors file holding the float kernel, which sums to 1 only up to float32
    // rounding: renormalising it moves it by about an ulp.
    const auto st = (dir / (kernel_name + ".safetensors")).string();
    io::save_safetensors(st, {{"kernel", g.tensor(kernel_name)}});
    EXPECT_LE(relative_error(ops::MotionBlur::from_file(st)->kernel(), g.tensor(kernel_name)),
              1e-6);
    ++checked;
  }
  fs::remove_all(dir);
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace p2l::test
