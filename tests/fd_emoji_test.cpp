// FD-emoji: the shipped emoji feature network (models/emoji-64/fd_emoji) and the Fréchet
// distance on its features, in process and through `p2l score --fd-emoji`. The degradation test
// runs on the model's held-out test images (models/emoji-64/test_images), which the network
// never saw in training.
#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "cli_runner.h"
#include "error_of.h"
#include "p2l/error.h"
#include "p2l/io/image.h"
#include "p2l/io/safetensors.h"
#include "p2l/metrics/emoji_features.h"
#include "p2l/metrics/feature_distances.h"
#include "p2l/operators/gaussian_blur.h"
#include "p2l/operators/noise.h"
#include "scratch_dir.h"

namespace p2l::test {
namespace {

namespace fs = std::filesystem;

const fs::path kNetwork = fs::path(P2L_MODELS_DIR) / "emoji-64" / "fd_emoji";
const fs::path kTestImages = fs::path(P2L_MODELS_DIR) / "emoji-64" / "test_images";

constexpr char kFdEmojiScratch[] = "fd_emoji";
// Scratch files.
const fs::path& fd_scratch() { return test::scratch_dir<kFdEmojiScratch>(); }

metrics::EmojiFeatureNet& network() {
  static auto net = metrics::load_emoji_feature_net(kNetwork.string());
  return net;
}

std::vector<fs::path> test_image_files() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(kTestImages))
    if (entry.path().extension() == ".png") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

// The shipped test images, [N, 3, 64, 64] in [-1, 1].
const torch::Tensor& clean_images() {
  static const torch::Tensor images = [] {
    std::vector<torch::Tensor> all;
    for (const auto& file : test_image_files()) all.push_back(io::load_image(file.string()));
    return torch::cat(all);
  }();
  return images;
}

// Gaussian blur of width σ_blur (kernel radius 3σ) then seeded Gaussian noise σ_noise, clamped
// to the image range: the degradations p2l restores.
torch::Tensor degrade(const torch::Tensor& x, double blur_sigma, double noise_sigma) {
  const int64_t size = 2 * static_cast<int64_t>(std::ceil(3 * blur_sigma)) + 1;
  const auto blurred = operators::GaussianBlur(size, blur_sigma).forward(x);
  return operators::add_noise(blurred, operators::NoiseModel::gaussian(noise_sigma), 5)
      .clamp(-1, 1);
}

torch::Tensor features(const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  return network()->features(images);
}

TEST(FdEmoji, ShippedNetworkLoadsWithItsConfig) {
  std::ifstream in(kNetwork / "config.json");
  ASSERT_TRUE(in) << kNetwork;
  const auto config = nlohmann::json::parse(in);
  EXPECT_EQ(config["feature_dim"].get<int64_t>(), metrics::EmojiFeatureNetImpl::kFeatures);
  EXPECT_EQ(network()->classes(), static_cast<int64_t>(config["classes"].size()));
  EXPECT_GT(config["test_accuracy"].get<double>(), 0.0);
  EXPECT_LT(fs::file_size(kNetwork / "model.safetensors"), 2u << 20);
  for (const auto& p : network()->parameters()) EXPECT_FALSE(p.requires_grad());
  const auto f = features(clean_images());
  ASSERT_EQ(f.sizes(), (std::vector<int64_t>{clean_images().size(0), 128}));
  EXPECT_TRUE(torch::isfinite(f).all().item<bool>());
  // The classifier head covers the config's classes.
  torch::NoGradGuard no_grad;
  EXPECT_EQ(network()->forward(clean_images()).size(1), network()->classes());
}

TEST(FdEmoji, FeaturesAreDeterministicAndPerImage) {
  const auto& x = clean_images();
  const auto a = features(x), b = features(x);
  EXPECT_TRUE(torch::equal(a, b));
  // GroupNorm normalises each image alone, so a feature does not depend on its batch (and the
  // score command's --batch-size cannot change FD-emoji).
  EXPECT_TRUE(torch::allclose(features(x.slice(0, 2, 3)), a.slice(0, 2, 3), 1e-4, 1e-5));
  // [3, H, W] is one image.
  EXPECT_TRUE(torch::allclose(features(x[0]), a.slice(0, 0, 1), 1e-4, 1e-5));
}

TEST(FdEmoji, OtherSizesAreResizedTo64) {
  const auto& x = clean_images();
  namespace F = torch::nn::functional;
  const auto big = F::interpolate(
      x, F::InterpolateFuncOptions().size(std::vector<int64_t>{128, 128}).mode(torch::kNearest));
  // Nearest 2× up, then bilinear (align_corners = false) 2× down: exactly the original pixels.
  EXPECT_TRUE(torch::allclose(features(big), features(x), 1e-4, 1e-5));
  EXPECT_NE(error_of([&] { features(x.slice(1, 0, 1)); }).find("[N, 3, H, W]"), std::string::npos);
}

TEST(FdEmoji, DistanceOfASetWithItselfIsZero) {
  const auto f = features(clean_images());
  const double scale = metrics::gaussian_stats(f).covariance.trace().item<double>();
  EXPECT_NEAR(metrics::frechet_distance(f, f), 0.0, 1e-9 * scale + 1e-9);
}

TEST(FdEmoji, GrowsWithDegradationStrength) {
  const auto clean = features(clean_images());
  // (blur σ, noise σ on the [-1, 1] scale), mild to heavy.
  const std::vector<std::pair<double, double>> levels = {
      {0.5, 0.02}, {1.0, 0.05}, {2.0, 0.15}, {3.0, 0.4}};
  std::vector<double> distances;
  for (const auto& [blur, noise] : levels)
    distances.push_back(
        metrics::frechet_distance(clean, features(degrade(clean_images(), blur, noise))));
  EXPECT_GT(distances.front(), 0.0);
  for (size_t i = 1; i < distances.size(); ++i)
    EXPECT_GT(distances[i], distances[i - 1])
        << "level " << i << ": " << testing::PrintToString(distances);
  // Heavy degradation is far beyond the mild one, not a rounding-size step.
  EXPECT_GT(distances.back(), 5 * distances.front()) << testing::PrintToString(distances);
}

TEST(FdEmoji, BadWeightFilesNameTheFile) {
  const auto weights = kNetwork / "model.safetensors";
  // Truncated: the header promises more bytes than the file holds.
  const auto truncated = fd_scratch() / "truncated.safetensors";
  fs::copy_file(weights, truncated, fs::copy_options::overwrite_existing);
  fs::resize_file(truncated, fs::file_size(weights) / 2);
  EXPECT_NE(error_of([&] {
              metrics::load_emoji_feature_net(truncated.string());
            }).find(truncated.string()),
            std::string::npos);
  // Not safetensors at all.
  const auto garbage = fd_scratch() / "garbage.safetensors";
  std::ofstream(garbage) << "not a weight file, just some text of enough length";
  EXPECT_NE(
      error_of([&] { metrics::load_emoji_feature_net(garbage.string()); }).find(garbage.string()),
      std::string::npos);
  // Another network's file: no classifier.
  const auto other = fd_scratch() / "other.safetensors";
  io::save_safetensors(other.string(), {{"conv.weight", torch::zeros({2, 2})}});
  const auto no_head = error_of([&] { metrics::load_emoji_feature_net(other.string()); });
  EXPECT_NE(no_head.find(other.string()), std::string::npos) << no_head;
  EXPECT_NE(no_head.find("classifier.weight"), std::string::npos) << no_head;
  // A stage tensor missing: named with its expected shape.
  const auto missing = fd_scratch() / "missing.safetensors";
  {
    const io::SafeTensorsFile in(weights.string());
    std::vector<std::pair<std::string, torch::Tensor>> kept;
    for (const auto& info : in.tensors())
      if (info.name != "stages.2.conv.weight") kept.emplace_back(info.name, in.load(info.name));
    io::save_safetensors(missing.string(), kept);
  }
  const auto absent = error_of([&] { metrics::load_emoji_feature_net(missing.string()); });
  EXPECT_NE(absent.find("stages.2.conv.weight"), std::string::npos) << absent;
  // A folder without model.safetensors.
  EXPECT_NE(error_of([&] {
              metrics::load_emoji_feature_net(fd_scratch().string());
            }).find("model.safetensors"),
            std::string::npos);
}

TEST(FdEmoji, ScoreReportsFdEmojiNeverFid) {
  const auto dir = fd_scratch() / "score";
  fs::create_directories(dir / "clean");
  fs::create_directories(dir / "blurred");
  const auto files = test_image_files();
  const auto blurred = degrade(clean_images(), 2.0, 0.15);
  for (size_t i = 0; i < files.size(); ++i) {
    fs::copy_file(files[i], dir / "clean" / files[i].filename());
    io::save_png((dir / "blurred" / files[i].filename()).string(),
                 blurred.slice(0, static_cast<int64_t>(i), static_cast<int64_t>(i) + 1));
  }
  const auto json = dir / "scores.json";
  const auto r = run_p2l("--threads 2 -q score --reference " + (dir / "clean").string() +
                             " --images " + (dir / "blurred").string() + " --fd-emoji " +
                             kNetwork.string() + " --batch-size 3 --json " + json.string(),
                         dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("FD-emoji:"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("FID"), std::string::npos) << r.out;
  const auto report = nlohmann::json::parse(slurp(json));
  ASSERT_TRUE(report.contains("fd_emoji")) << report.dump();
  EXPECT_FALSE(report.contains("fid"));
  EXPECT_EQ(report["fd_emoji_network"], kNetwork.string());
  // The PNGs round to 8 bits: compare with the in-process value of the files as written.
  std::vector<torch::Tensor> written;
  for (const auto& file : files)
    written.push_back(io::load_image((dir / "blurred" / file.filename()).string()));
  const double expected =
      metrics::frechet_distance(features(clean_images()), features(torch::cat(written)));
  EXPECT_NEAR(report["fd_emoji"].get<double>(), expected, 1e-4 * expected);
  EXPECT_GT(expected, 0.0);

  // One image is not a set.
  expect_one_line_error(run_p2l("score --reference " + files[0].string() + " --images " +
                                    files[1].string() + " --fd-emoji " + kNetwork.string(),
                                dir),
                        "at least 2 images");
  // A folder that holds no network.
  expect_one_line_error(run_p2l("score --reference " + (dir / "clean").string() + " --images " +
                                    (dir / "blurred").string() + " --fd-emoji " + dir.string(),
                                dir),
                        "model.safetensors");
}

}  // namespace
}  // namespace p2l::test
