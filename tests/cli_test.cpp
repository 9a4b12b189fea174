// The p2l binary end to end: `info`, `sample`, `autoencode`, and one-line errors with a non-zero
// exit.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli_runner.h"
#include "goldens.h"
#include "p2l/io/image.h"
#include "p2l/io/json_file.h"
#include "p2l/metrics/image_quality.h"
#include "p2l/model/checkpoint.h"

namespace p2l::test {
namespace {

namespace fs = std::filesystem;

RunResult run_cli(const std::string& args) { return run_p2l(args); }

TEST(Cli, InfoDescribesBothLayouts) {
  for (const auto& path : {Goldens::get().diffusers_dir(), Goldens::get().single_file()}) {
    auto r = run_cli("info --json " + path);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto info = nlohmann::json::parse(r.out);
    EXPECT_GT(info["unet"]["parameters"].get<int64_t>(), 0);
    EXPECT_EQ(info["storage_dtype"], Goldens::get().meta()["precision"]["weight_storage"]);
  }
}

TEST(Cli, SampleWritesAPng) {
  const auto out = fs::path(::testing::TempDir()) / "p2l_sample.png";
  fs::remove(out);
  auto r = run_cli("sample -m " + Goldens::get().diffusers_dir() +
                   " -p \"a photo of a cat\" --steps 2 -W 64 -H 48 --seed 3 --threads 1 -o " +
                   out.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto img = io::load_image(out.string());
  EXPECT_EQ(img.sizes(), (std::vector<int64_t>{1, 3, 48, 64}));
  EXPECT_NE(r.err.find("sampling 2/2"), std::string::npos) << r.err;  // progress is shown
  // Same seed, same image.
  const auto again = fs::path(::testing::TempDir()) / "p2l_sample2.png";
  r = run_cli("sample -m " + Goldens::get().diffusers_dir() +
              " -p \"a photo of a cat\" --steps 2 -W 64 -H 48 --seed 3 --threads 1 -o " +
                  again.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(torch::equal(img, io::load_image(again.string())));
}

// `p2l autoencode` reports PSNR/SSIM of D(E(x)) per image — the same values as encoding and
// decoding in process — and writes reconstructions that are D(E(x)) up to 8-bit rounding.
TEST(Cli, AutoencodeReportsTheAutoencodersReconstruction) {
  const auto dir = fs::path(::testing::TempDir()) / "p2l_autoencode";
  fs::remove_all(dir);
  fs::create_directories(dir / "in");
  torch::manual_seed(5);
  // Two unlike images: a smooth ramp and noise.
  const auto smooth = torch::linspace(-0.8, 0.8, 64).view({1, 1, 1, 64}).expand({1, 3, 64, 64});
  io::save_png((dir / "in" / "a_smooth.png").string(), smooth);
  io::save_png((dir / "in" / "b_noise.png").string(), torch::rand({1, 3, 64, 64}) * 2 - 1);
  auto r = run_cli("autoencode -m " + Goldens::get().diffusers_dir() + " --threads 1 " +
                   (dir / "in").string() + " -o " + (dir / "out").string() + " --json " +
                   (dir / "ae.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto report = io::read_json((dir / "ae.json").string());
  ASSERT_EQ(report["images"].size(), 2u);
  auto sd = model::load_stable_diffusion(Goldens::get().diffusers_dir());
  torch::NoGradGuard no_grad;
  double mean = 0;
  for (const auto& row : report["images"]) {
    const auto name = row["image"].get<std::string>();
    const auto x = io::load_image((dir / "in" / name).string());
    const auto rec = sd.vae->decode_scaled(sd.vae->encode_mean(x));
    EXPECT_NEAR(row["psnr"].get<double>(), metrics::psnr(rec, x), 1e-4) << name;
    EXPECT_NEAR(row["ssim"].get<double>(), metrics::ssim(rec, x), 1e-5) << name;
    EXPECT_GT(metrics::psnr(io::load_image((dir / "out" / name).string()), rec), 40.0) << name;
    EXPECT_NE(r.out.find("| " + name + " |"), std::string::npos) << r.out;
    mean += row["psnr"].get<double>() / 2;
  }
  EXPECT_NEAR(report["mean_psnr"].get<double>(), mean, 1e-9);
  EXPECT_NE(r.out.find("| mean of 2 |"), std::string::npos) << r.out;

  // A broken image and a size the autoencoder cannot take: one line naming the file.
  std::ofstream(dir / "broken.png") << "not a png";
  io::save_png((dir / "odd.png").string(), torch::zeros({1, 3, 30, 30}));
  for (const auto* bad : {"broken.png", "odd.png"}) {
    r = run_cli("autoencode -m " + Goldens::get().diffusers_dir() + " " + (dir / bad).string());
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_NE(r.err.find(bad), std::string::npos) << r.err;
    EXPECT_LE(count_lines(r.err), 2) << r.err;
  }
}

TEST(Cli, BadInputGivesOneLineErrorAndNonZeroExit) {
  const std::string model = Goldens::get().diffusers_dir();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"sample -m /nonexistent/model -p x", "/nonexistent/model"},
      {"sample -m " + model + " -W 60 -H 64", "multiples"},
      {"sample -m " + model + " --steps 0", "--steps"},
      {"sample -m " + model + " --device cuda:99", "--device"},  // no such GPU, or no CUDA
      {"sample -m " + model + " --eta 2", "--eta"},
      {"info " + fs::path(::testing::TempDir()).string(), "not a model"},
      {"frobnicate", "frobnicate"},
      {"--threads -2 info " + model, "--threads"},
      {"sample -m " + model + " --bogus-flag", "--bogus-flag"},
      {"sample -m " + model + " --precision fp8", "--precision"},
      {"sample -m " + model + " --vae-precision fp8", "--vae-precision"},
      {"sample -m " + model + " --vae-precision fp16", "--vae-precision fp16"},  // CUDA only
  };
  for (const auto& [args, culprit] : cases) {
    auto r = run_cli(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_NE(r.err.find(culprit), std::string::npos) << args << "\n" << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << args << "\n" << r.err;
  }
}

}  // namespace
}  // namespace p2l::test
