// LPIPS, the FID Inception, Fréchet and kernel distances (SPEC §6), and `p2l score` end to end.
// No real weights exist here, so the networks run on random weights written to a safetensors
// file and read back through the real loaders: the tests check the architecture (parameter
// counts of the torchvision networks, names), the arithmetic (against computations written out
// in the test) and the errors; the distances are checked against closed forms.
#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>

#include "cli_runner.h"
#include "error_of.h"
#include "p2l/error.h"
#include "p2l/eval/score.h"
#include "p2l/io/image.h"
#include "p2l/io/safetensors.h"
#include "p2l/metrics/feature_distances.h"
#include "p2l/metrics/image_quality.h"
#include "p2l/metrics/inception.h"
#include "p2l/metrics/lpips.h"
#include "scratch_dir.h"

namespace p2l::test {
namespace {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using metrics::LpipsNet;

constexpr char kMetricNetworksScratch[] = "metric_networks";
// Scratch files (the Inception file is 87 MB).
const fs::path& networks_scratch() { return test::scratch_dir<kMetricNetworksScratch>(); }

// Parameters and buffers under their registered names: what a converted weight file holds.
std::vector<std::pair<std::string, torch::Tensor>> named_tensors(torch::nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : module.named_parameters()) out.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers())
    if (item.key().find("num_batches_tracked") == std::string::npos)
      out.emplace_back(item.key(), item.value());
  return out;
}

std::string write_weights(torch::nn::Module& module, const std::string& file) {
  const auto path = (networks_scratch() / file).string();
  io::save_safetensors(path, named_tensors(module));
  return path;
}

// The file's tensors except `drop`, written under another name.
std::string copy_without(const std::string& source, const std::string& drop,
                         const std::string& file) {
  const io::SafeTensorsFile in(source);
  std::vector<std::pair<std::string, torch::Tensor>> kept;
  for (const auto& info : in.tensors())
    if (info.name != drop) kept.emplace_back(info.name, in.load(info.name));
  const auto path = (networks_scratch() / file).string();
  io::save_safetensors(path, kept);
  return path;
}

int64_t parameter_count(torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

// --- LPIPS --------------------------------------------------------------------------------------

// Random backbone (LibTorch's default initialisation) and non-negative heads, as trained LPIPS
// heads are (the package clamps them at 0 while training).
metrics::Lpips random_lpips(LpipsNet net, uint64_t seed) {
  torch::manual_seed(seed);
  metrics::Lpips lpips(net);
  torch::NoGradGuard no_grad;
  for (auto& item : lpips->named_parameters())
    if (item.key().rfind("lin", 0) == 0) item.value().abs_();
  lpips->eval();
  return lpips;
}

// LPIPS written out from the paper and torchvision's layer lists, on the tensors of the file:
// an independent check of the module's layer order, strides, paddings, taps, scaling layer,
// unit normalisation and heads.
struct RefConv {
  int index, stride, pad;
  bool pool_before, tapped;
};

torch::Tensor reference_lpips(const std::string& file, LpipsNet net, const torch::Tensor& x,
                              const torch::Tensor& y) {
  const auto w = io::SafeTensorsFile(file).load_all();
  const std::vector<RefConv> alex = {{0, 4, 2, false, true},
                                     {3, 1, 2, true, true},
                                     {6, 1, 1, true, true},
                                     {8, 1, 1, false, true},
                                     {10, 1, 1, false, true}};
  std::vector<RefConv> vgg;
  for (int i : {0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28})
    vgg.push_back({i, 1, 1, i == 5 || i == 10 || i == 17 || i == 24,
                   i == 2 || i == 7 || i == 14 || i == 21 || i == 28});
  const auto& convs = net == LpipsNet::Alex ? alex : vgg;
  const int pool = net == LpipsNet::Alex ? 3 : 2;
  auto taps = [&](torch::Tensor h) {
    h = (h - torch::tensor({-0.030, -0.088, -0.188}).view({1, 3, 1, 1})) /
        torch::tensor({0.458, 0.448, 0.450}).view({1, 3, 1, 1});
    std::vector<torch::Tensor> out;
    for (const auto& c : convs) {
      if (c.pool_before) h = F::max_pool2d(h, F::MaxPool2dFuncOptions(pool).stride(2));
      const auto name = "net.features." + std::to_string(c.index);
      h = torch::relu(F::conv2d(
          h, w.at(name + ".weight"),
          F::Conv2dFuncOptions().bias(w.at(name + ".bias")).stride(c.stride).padding(c.pad)));
      if (c.tapped) out.push_back(h);
    }
    return out;
  };
  const auto fx = taps(x), fy = taps(y);
  auto d = torch::zeros({x.size(0)});
  for (size_t l = 0; l < fx.size(); ++l) {
    auto nx = fx[l] / (fx[l].pow(2).sum(1, true).sqrt() + 1e-10);
    auto ny = fy[l] / (fy[l].pow(2).sum(1, true).sqrt() + 1e-10);
    const auto head = w.at("lin" + std::to_string(l) + ".model.1.weight").view({1, -1, 1, 1});
    d += (head * (nx - ny).pow(2)).sum(1).mean({1, 2});
  }
  return d;
}

TEST(MetricNetworks, LpipsLayoutIsTorchvisionsAndThePackages) {
  // torchvision: alexnet 61,100,840 parameters of which the classifier holds 58,631,144; vgg16
  // 138,357,544 of which the classifier holds 123,642,856. Heads: one weight per channel.
  metrics::Lpips alex(LpipsNet::Alex), vgg(LpipsNet::Vgg);
  EXPECT_EQ(parameter_count(*alex), 2469696 + (64 + 192 + 384 + 256 + 256));
  EXPECT_EQ(parameter_count(*vgg), 14714688 + (64 + 128 + 256 + 512 + 512));
  const auto a = alex->named_parameters(), v = vgg->named_parameters();
  EXPECT_EQ(a["net.features.0.weight"].sizes(), (std::vector<int64_t>{64, 3, 11, 11}));
  EXPECT_EQ(a["net.features.10.bias"].sizes(), (std::vector<int64_t>{256}));
  EXPECT_EQ(a["lin4.model.1.weight"].sizes(), (std::vector<int64_t>{1, 256, 1, 1}));
  EXPECT_EQ(v["net.features.28.weight"].sizes(), (std::vector<int64_t>{512, 512, 3, 3}));
  EXPECT_EQ(v["lin2.model.1.weight"].sizes(), (std::vector<int64_t>{1, 256, 1, 1}));
  EXPECT_EQ(alex->named_buffers().size(), 0u);
}

void check_lpips_from_file(LpipsNet net, int64_t size) {
  SCOPED_TRACE(metrics::lpips_net_name(net));
  auto original = random_lpips(net, 11);
  const auto file =
      write_weights(*original, "lpips_" + metrics::lpips_net_name(net) + ".safetensors");
  auto lpips = metrics::load_lpips(file, net);
  torch::manual_seed(12);
  const auto x = torch::rand({2, 3, size, size}) * 2 - 1;
  const auto y = (x + 0.3 * torch::randn_like(x)).clamp(-1, 1);
  torch::NoGradGuard no_grad;
  const auto d = lpips(x, y);
  ASSERT_EQ(d.sizes(), (std::vector<int64_t>{2}));
  EXPECT_TRUE(torch::allclose(d, reference_lpips(file, net, x, y), 1e-4, 1e-7))
      << d << reference_lpips(file, net, x, y);
  EXPECT_TRUE(torch::allclose(d, original(x, y), 1e-5, 1e-8));  // the file round trip
  EXPECT_TRUE(torch::equal(lpips(x, x), torch::zeros({2})));
  EXPECT_TRUE(torch::equal(d, lpips(y, x)));  // symmetric, bit for bit
  EXPECT_GT(d.min().item<double>(), 0);
  EXPECT_EQ(lpips(x[0], y[0]).sizes(), (std::vector<int64_t>{1}));  // [3, H, W] is one image
  for (const auto& p : lpips->parameters()) EXPECT_FALSE(p.requires_grad());
}

TEST(MetricNetworks, LpipsFromAFileMatchesTheDefinition) {
  check_lpips_from_file(LpipsNet::Alex, 48);
  check_lpips_from_file(LpipsNet::Vgg, 32);
}

TEST(MetricNetworks, LpipsWeightErrorsNameTheFileAndTensor) {
  auto alex = random_lpips(LpipsNet::Alex, 21);
  const auto full = write_weights(*alex, "lpips_alex_full.safetensors");
  const auto missing = copy_without(full, "lin3.model.1.weight", "lpips_alex_missing.safetensors");
  auto msg = error_of([&] { metrics::load_lpips(missing, LpipsNet::Alex); });
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;
  EXPECT_NE(msg.find("lin3.model.1.weight"), std::string::npos) << msg;

  // A mis-shaped head.
  std::vector<std::pair<std::string, torch::Tensor>> tensors = named_tensors(*alex);
  for (auto& [name, t] : tensors)
    if (name == "lin1.model.1.weight") t = torch::ones({1, 191, 1, 1});
  const auto misshaped = (networks_scratch() / "lpips_alex_misshaped.safetensors").string();
  io::save_safetensors(misshaped, tensors);
  msg = error_of([&] { metrics::load_lpips(misshaped, LpipsNet::Alex); });
  EXPECT_NE(msg.find("lin1.model.1.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("191"), std::string::npos) << msg;

  // The other backbone's file: said in words, not only as a shape.
  msg = error_of([&] { metrics::load_lpips(full, LpipsNet::Vgg); });
  EXPECT_NE(msg.find("alex"), std::string::npos) << msg;
  EXPECT_NE(msg.find("net.features.0.weight"), std::string::npos) << msg;

  // A truncated file.
  const auto truncated = (networks_scratch() / "lpips_alex_truncated.safetensors").string();
  fs::copy_file(full, truncated, fs::copy_options::overwrite_existing);
  fs::resize_file(truncated, fs::file_size(full) / 2);
  msg = error_of([&] { metrics::load_lpips(truncated, LpipsNet::Alex); });
  EXPECT_NE(msg.find(truncated), std::string::npos) << msg;

  EXPECT_THROW(metrics::lpips_net_from_name("squeeze"), Error);
  EXPECT_THROW(alex(torch::zeros({1, 3, 24, 24}), torch::zeros({1, 3, 24, 24})), Error);
  EXPECT_THROW(alex(torch::zeros({1, 3, 32, 32}), torch::zeros({1, 3, 32, 40})), Error);
}

// --- Inception ----------------------------------------------------------------------------------

// The random FID Inception and its file, made once per process. He-initialised convolutions and
// batch norms near the identity keep activations at a usable scale through the 94 units.
struct RandomInception {
  metrics::FidInception net;
  std::string file;
};

RandomInception& random_inception() {
  static RandomInception made = [] {
    torch::manual_seed(31);
    metrics::FidInception net;
    torch::NoGradGuard no_grad;
    for (auto& item : net->named_parameters()) {
      const auto& name = item.key();
      auto& p = item.value();
      if (name.find(".conv.") != std::string::npos)
        torch::nn::init::kaiming_normal_(p, 0, torch::kFanIn, torch::kReLU);
      else if (name.find(".bn.weight") != std::string::npos)
        p.uniform_(0.5, 1.5);
      else
        p.uniform_(-0.1, 0.1);
    }
    for (auto& item : net->named_buffers()) {
      if (item.key().find("running_mean") != std::string::npos) item.value().uniform_(-0.1, 0.1);
      if (item.key().find("running_var") != std::string::npos) item.value().uniform_(0.5, 2.0);
    }
    net->eval();
    return RandomInception{net, write_weights(*net, "fid_inception.safetensors")};
  }();
  return made;
}

TEST(MetricNetworks, InceptionLayoutIsTorchvisionsNames) {
  // torchvision's inception_v3 has 27,161,264 parameters: without AuxLogits (3,326,696) and fc
  // (2,049,000) that leaves 21,785,568, and the FID blocks change no shape.
  metrics::FidInception net;
  EXPECT_EQ(parameter_count(*net), 21785568);
  const auto params = net->named_parameters();
  const auto buffers = net->named_buffers();
  EXPECT_EQ(params["Conv2d_1a_3x3.conv.weight"].sizes(), (std::vector<int64_t>{32, 3, 3, 3}));
  EXPECT_EQ(params["Mixed_6b.branch7x7_2.conv.weight"].sizes(),
            (std::vector<int64_t>{128, 128, 1, 7}));
  EXPECT_EQ(params["Mixed_7c.branch3x3dbl_3b.conv.weight"].sizes(),
            (std::vector<int64_t>{384, 384, 3, 1}));
  EXPECT_EQ(buffers["Mixed_7c.branch_pool.bn.running_var"].sizes(), (std::vector<int64_t>{192}));
  EXPECT_EQ(params.find("Conv2d_1a_3x3.conv.bias"), nullptr);
}

TEST(MetricNetworks, InceptionFeaturesFromAFile) {
  auto& made = random_inception();
  auto net = metrics::load_fid_inception(made.file);
  torch::manual_seed(32);
  const auto images = torch::rand({2, 3, 64, 64}) * 2 - 1;
  torch::NoGradGuard no_grad;
  const auto features = net->features(images);
  ASSERT_EQ(features.sizes(), (std::vector<int64_t>{2, 2048}));
  EXPECT_TRUE(torch::isfinite(features).all().item<bool>());
  EXPECT_GE(features.min().item<double>(), 0);  // averages of ReLU outputs
  EXPECT_GT(features.std().item<double>(), 0);
  // The file holds everything, batch-norm statistics included: the loaded network computes what
  // the original one does, and an image alone what it does in a batch.
  const auto alone = made.net->features(images[0]);
  const double scale = features.abs().max().item<double>();
  EXPECT_TRUE(torch::allclose(features[0], alone[0], 1e-4, 1e-5 * scale));
  // The network resizes to 299×299 itself: a pre-resized image (the identity then) matches.
  const auto resized =
      F::interpolate(images.slice(0, 1, 2), F::InterpolateFuncOptions()
                                                .size(std::vector<int64_t>{299, 299})
                                                .mode(torch::kBilinear)
                                                .align_corners(false));
  EXPECT_TRUE(torch::allclose(features[1], net->features(resized)[0], 1e-4, 1e-5 * scale));
}

TEST(MetricNetworks, InceptionMissingStatisticIsNamed) {
  const auto missing = copy_without(random_inception().file, "Mixed_6e.branch_pool.bn.running_mean",
                                    "fid_inception_missing.safetensors");
  const auto msg = error_of([&] { metrics::load_fid_inception(missing); });
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;
  EXPECT_NE(msg.find("Mixed_6e.branch_pool.bn.running_mean"), std::string::npos) << msg;
  fs::remove(missing);
}

// --- Fréchet distance ---------------------------------------------------------------------------

metrics::GaussianStats stats(const torch::Tensor& mean, const torch::Tensor& covariance) {
  return {mean.to(torch::kDouble), covariance.to(torch::kDouble), 100};
}

TEST(MetricNetworks, GaussianStatsOfAHandExample) {
  // Rows (1, 2), (3, 4), (5, 0): mean (3, 2); deviations (−2, 0), (0, 2), (2, −2), so with N − 1:
  // var x = 8/2, var y = 8/2, cov = −4/2.
  const auto s = metrics::gaussian_stats(torch::tensor({{1.0, 2.0}, {3.0, 4.0}, {5.0, 0.0}}));
  EXPECT_TRUE(torch::allclose(s.mean, torch::tensor({3.0, 2.0}, torch::kDouble)));
  EXPECT_TRUE(
      torch::allclose(s.covariance, torch::tensor({{4.0, -2.0}, {-2.0, 4.0}}, torch::kDouble)));
  EXPECT_EQ(s.count, 3);
  EXPECT_THROW(metrics::gaussian_stats(torch::ones({1, 4})), Error);
  EXPECT_THROW(metrics::gaussian_stats(torch::full({3, 2}, NAN)), Error);
}

TEST(MetricNetworks, FrechetDistanceClosedForms) {
  // Diagonal covariances: ‖μ1 − μ2‖² + Σ_i (σ1_i − σ2_i)².
  const auto v1 = torch::tensor({0.5, 1.0, 2.0, 4.0, 0.1}, torch::kDouble);
  const auto v2 = torch::tensor({1.5, 1.0, 0.25, 9.0, 0.4}, torch::kDouble);
  const auto m1 = torch::tensor({0.0, 1.0, -1.0, 2.0, 0.5}, torch::kDouble);
  const auto m2 = torch::tensor({1.0, 1.0, 0.0, 0.0, 0.5}, torch::kDouble);
  const double expected =
      (m1 - m2).pow(2).sum().item<double>() + (v1.sqrt() - v2.sqrt()).pow(2).sum().item<double>();
  EXPECT_NEAR(metrics::frechet_distance(stats(m1, v1.diag()), stats(m2, v2.diag())), expected,
              1e-12);

  // 2×2, not commuting: Σ1 = diag(4, 1), Σ2 = [[2, 1], [1, 2]]. √Σ1 Σ2 √Σ1 = [[8, 2], [2, 2]]
  // (trace 10, determinant 12) and tr √M = √(tr M + 2 √det M) for 2×2 M ⪰ 0, so
  // FD = 5 + 4 − 2 √(10 + 4√3) (+ ‖(1, −2)‖² = 5 for the means).
  const auto s1 = torch::tensor({{4.0, 0.0}, {0.0, 1.0}}, torch::kDouble);
  const auto s2 = torch::tensor({{2.0, 1.0}, {1.0, 2.0}}, torch::kDouble);
  const auto zero = torch::zeros({2}, torch::kDouble);
  const double hand = 9 - 2 * std::sqrt(10 + 4 * std::sqrt(3.0));
  EXPECT_NEAR(metrics::frechet_distance(stats(zero, s1), stats(zero, s2)), hand, 1e-12);
  EXPECT_NEAR(metrics::frechet_distance(stats(zero, s2), stats(zero, s1)), hand, 1e-12);
  EXPECT_NEAR(metrics::frechet_distance(stats(torch::tensor({1.0, -2.0}), s1), stats(zero, s2)),
              hand + 5, 1e-12);
  // Commuting: [[2, 1], [1, 2]] and [[2, −1], [−1, 2]] share eigenvectors with eigenvalues (3, 1)
  // and (1, 3): Σ1 Σ2 has eigenvalues 3, 3, so FD = 4 + 4 − 2 · 2√3.
  const auto s3 = torch::tensor({{2.0, -1.0}, {-1.0, 2.0}}, torch::kDouble);
  EXPECT_NEAR(metrics::frechet_distance(stats(zero, s2), stats(zero, s3)), 8 - 4 * std::sqrt(3.0),
              1e-12);
  // Rank-deficient (fewer samples than dimensions) is fine: Σ2 = 0 gives tr Σ1.
  EXPECT_NEAR(metrics::frechet_distance(stats(zero, s1), stats(zero, torch::zeros({2, 2}))), 5.0,
              1e-12);
}

TEST(MetricNetworks, FrechetDistanceOfFeatureSets) {
  torch::manual_seed(41);
  const auto a = torch::randn({300, 64}, torch::kDouble) * torch::rand({64}, torch::kDouble) * 3;
  const auto b = torch::randn({200, 64}, torch::kDouble) + 0.2;
  const double fd = metrics::frechet_distance(a, b);
  EXPECT_NEAR(metrics::frechet_distance(a, a), 0.0, 1e-9);
  EXPECT_GT(fd, 1.0);
  EXPECT_NEAR(metrics::frechet_distance(b, a), fd, 1e-9 * fd);
  // Relabelling the feature dimensions (the same way in both sets) changes nothing.
  const auto perm = torch::randperm(64);
  EXPECT_NEAR(metrics::frechet_distance(a.index_select(1, perm), b.index_select(1, perm)), fd,
              1e-9 * fd);
  // Float features are taken to float64 first.
  EXPECT_NEAR(metrics::frechet_distance(a.to(torch::kFloat), b.to(torch::kFloat)), fd, 1e-4 * fd);
  EXPECT_THROW(metrics::frechet_distance(a, b.slice(1, 0, 63)), Error);
}

// --- kernel distance (KID) ----------------------------------------------------------------------

TEST(MetricNetworks, KernelDistanceOfAHandExample) {
  // x = (0,0), (1,0), (0,1); y = (1,1), (0,0), (2,0); k(p, q) = (pᵀq/2 + 1)³.
  // x×x off-diagonal: every product is 0, k = 1: mean 1.
  // y×y off-diagonal: (1,1)·(2,0) = 2 → k = 8, the other two pairs k = 1: mean (8+1+1)/3 = 10/3.
  // x×y: row (0,0): 1, 1, 1; row (1,0): 1.5³ = 3.375, 1, 8; row (0,1): 3.375, 1, 1 → sum 20.75.
  // MMD² = 1 + 10/3 − 2 · 20.75/9 = −5/18.
  const auto x = torch::tensor({{0.0, 0.0}, {1.0, 0.0}, {0.0, 1.0}});
  const auto y = torch::tensor({{1.0, 1.0}, {0.0, 0.0}, {2.0, 0.0}});
  EXPECT_NEAR(metrics::polynomial_mmd2(x, y), -5.0 / 18, 1e-12);
  // One subset of all three points: a permutation of each set, the same value.
  const auto one = metrics::kernel_distance(x, y, {1, 3, 7});
  EXPECT_NEAR(one.mean, -5.0 / 18, 1e-12);
  EXPECT_EQ(one.subset_size, 3);
  // The subset size is capped at the set size, so every subset is the whole set.
  const auto many = metrics::kernel_distance(x, y, {5, 1000, 8});
  EXPECT_EQ(many.subset_size, 3);
  EXPECT_EQ(many.subsets, 5);
  EXPECT_NEAR(many.mean, -5.0 / 18, 1e-12);
  EXPECT_NEAR(many.std, 0.0, 1e-12);
}

TEST(MetricNetworks, KernelDistanceOfFeatureSets) {
  torch::manual_seed(51);
  const auto a = torch::randn({400, 16}, torch::kDouble);
  const auto b = torch::randn({300, 16}, torch::kDouble) * 1.5 + 0.5;
  const metrics::KernelDistanceOptions options{20, 100, 3};
  const auto kd = metrics::kernel_distance(a, b, options);
  const auto same = metrics::kernel_distance(a, torch::randn({300, 16}, torch::kDouble), options);
  EXPECT_EQ(kd.subset_size, 100);
  EXPECT_GT(kd.mean, 0.5);
  EXPECT_GT(kd.std, 0);
  // Another sample of the same distribution: zero within the estimator's noise. (A set against
  // itself is not: the subsets share points, whose k(x, x) enter the cross term.)
  EXPECT_LT(std::abs(same.mean), same.std) << same.mean << " ± " << same.std;
  EXPECT_LT(std::abs(same.mean), 0.05 * kd.mean) << same.mean << " vs " << kd.mean;
  // Seeded: the same draws again; relabelled feature dimensions change nothing.
  EXPECT_EQ(metrics::kernel_distance(a, b, options).mean, kd.mean);
  const auto perm = torch::randperm(16);
  EXPECT_NEAR(
      metrics::kernel_distance(a.index_select(1, perm), b.index_select(1, perm), options).mean,
      kd.mean, 1e-9 * kd.mean);
  EXPECT_THROW(metrics::kernel_distance(a, b.slice(1, 0, 15)), Error);
  EXPECT_THROW(metrics::kernel_distance(a.slice(0, 0, 1), b), Error);
}

// --- p2l score ----------------------------------------------------------------------------------

class ScoreCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = networks_scratch() / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir_ / "ref");
    fs::create_directories(dir_ / "out");
    torch::manual_seed(61);
    for (const char* name : {"a", "b"}) {
      const auto clean = torch::rand({1, 3, 40, 40}) * 2 - 1;
      io::save_png((dir_ / "ref" / (std::string(name) + ".png")).string(), clean);
      io::save_png((dir_ / "out" / (std::string(name) + ".png")).string(),
                   clean + 0.2 * torch::randn_like(clean));
    }
    auto lpips = random_lpips(LpipsNet::Alex, 62);
    lpips_ = write_weights(*lpips, "score_lpips_alex.safetensors");
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  RunResult p2l(const std::string& args) const { return run_p2l("-q " + args, dir_); }

  fs::path dir_;
  std::string lpips_;
};

TEST_F(ScoreCli, ScoresPairsAndSets) {
  const auto r = p2l("score --reference " + path("ref") + " --images " + path("out") +
                     " --lpips-weights " + lpips_ + " --lpips-net alex --inception-weights " +
                     random_inception().file + " --kid-subsets 3 --json " + path("scores.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("FID"), std::string::npos) << r.out;
  const auto report = nlohmann::json::parse(slurp(path("scores.json")));
  EXPECT_EQ(report["pairs"], 2);
  EXPECT_EQ(report["per_pair"].size(), 2u);
  EXPECT_EQ(report["lpips_net"], "alex");

  // The same numbers in process, from the PNGs as written.
  auto lpips = metrics::load_lpips(lpips_, LpipsNet::Alex);
  torch::NoGradGuard no_grad;
  double psnr = 0, ssim = 0, lp = 0;
  std::vector<torch::Tensor> refs, outs;
  for (const char* name : {"a", "b"}) {
    refs.push_back(io::load_image(path("ref/" + std::string(name) + ".png")));
    outs.push_back(io::load_image(path("out/" + std::string(name) + ".png")));
    psnr += metrics::psnr(outs.back(), refs.back()) / 2;
    ssim += metrics::ssim(outs.back(), refs.back()) / 2;
    lp += lpips(outs.back(), refs.back()).item<double>() / 2;
  }
  EXPECT_NEAR(report["psnr"].get<double>(), psnr, 1e-9);
  EXPECT_NEAR(report["ssim"].get<double>(), ssim, 1e-9);
  EXPECT_NEAR(report["lpips"].get<double>(), lp, 1e-6);
  EXPECT_GT(lp, 0);

  auto net = metrics::load_fid_inception(random_inception().file);
  const auto fa = net->features(torch::cat(refs)), fb = net->features(torch::cat(outs));
  // Two features per set: Σ1 = u uᵀ and Σ2 = v vᵀ with u, v = (f1 − f2)/√2, so
  // tr (Σ1 Σ2)^½ = |uᵀv| and FID = ‖μ1 − μ2‖² + ‖u‖² + ‖v‖² − 2 |uᵀv|.
  const auto a64 = fa.to(torch::kDouble), b64 = fb.to(torch::kDouble);
  const auto u = (a64[0] - a64[1]) / std::sqrt(2.0), v = (b64[0] - b64[1]) / std::sqrt(2.0);
  const double fid = (a64.mean(0) - b64.mean(0)).pow(2).sum().item<double>() +
                     u.dot(u).item<double>() + v.dot(v).item<double>() -
                     2 * std::abs(u.dot(v).item<double>());
  EXPECT_NEAR(report["fid"].get<double>(), fid, 1e-3 * std::abs(fid) + 1e-9);
  EXPECT_EQ(report["kid_subsets"], 3);
  EXPECT_EQ(report["kid_subset_size"], 2);
  // Both sets whole in every subset: KID is exact.
  EXPECT_NEAR(report["kid_mean"].get<double>(), metrics::polynomial_mmd2(fa, fb),
              1e-3 * std::abs(metrics::polynomial_mmd2(fa, fb)) + 1e-9);
}

// The library call behind the command: files and folders mix, images pair with references by
// file name, an image without one is counted and left out of the means.
TEST_F(ScoreCli, ScoreImagesPairsByNameAcrossFilesAndFolders) {
  io::save_png(path("c.png"), torch::zeros({1, 3, 40, 40}));
  eval::ScoreOptions options;
  options.reference = {path("ref")};
  options.images = {path("out/a.png"), path("c.png")};
  const auto report = eval::score_images(options);
  EXPECT_EQ(report["pairs"], 1);
  EXPECT_EQ(report["image_count"], 2);
  EXPECT_EQ(report["reference_count"], 2);
  EXPECT_EQ(report["unmatched"], nlohmann::json::array({"c"}));
  ASSERT_EQ(report["per_pair"].size(), 1u);
  EXPECT_EQ(report["per_pair"][0]["name"], "a");
  const auto x = io::load_image(path("out/a.png")), ref = io::load_image(path("ref/a.png"));
  EXPECT_DOUBLE_EQ(report["psnr"].get<double>(), metrics::psnr(x, ref));
  EXPECT_DOUBLE_EQ(report["ssim"].get<double>(), metrics::ssim(x, ref));
  EXPECT_FALSE(report.contains("lpips"));
  EXPECT_FALSE(report.contains("fid"));

  // Two images of one name in a set: which reference would pair is ambiguous.
  fs::create_directories(dir_ / "again");
  io::save_png(path("again/a.png"), torch::zeros({1, 3, 40, 40}));
  options.images = {path("out"), path("again")};
  EXPECT_NE(error_of([&] { eval::score_images(options); }).find("two images named 'a'"),
            std::string::npos);
  // Set metrics need two images a side.
  options.images = {path("out/a.png")};
  options.fd_emoji = "models/emoji-64/fd_emoji";
  EXPECT_NE(error_of([&] { eval::score_images(options); }).find("at least 2 images"),
            std::string::npos);
}

TEST_F(ScoreCli, BadInputIsOneLine) {
  // A missing folder.
  expect_one_line_error(p2l("score --reference " + path("ref") + " --images " + path("nowhere")),
                        "nowhere");
  // An image whose reference has another size.
  fs::create_directories(dir_ / "big");
  io::save_png(path("big/a.png"), torch::zeros({1, 3, 48, 48}));
  expect_one_line_error(p2l("score --reference " + path("ref") + " --images " + path("big")),
                        "a.png is 48×48 but its reference");
  // An unknown backbone.
  expect_one_line_error(p2l("score --reference " + path("ref") + " --images " + path("out") +
                            " --lpips-weights " + lpips_ + " --lpips-net squeeze"),
                        "squeeze");
  // Nothing to pair and nothing else to score.
  fs::create_directories(dir_ / "other");
  io::save_png(path("other/c.png"), torch::zeros({1, 3, 40, 40}));
  expect_one_line_error(p2l("score --reference " + path("ref") + " --images " + path("other")),
                        "no image in --images");
}

}  // namespace
}  // namespace p2l::test
