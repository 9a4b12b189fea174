// `p2l train` on a made-up emoji-datasource tree: which test-split emoji test-images picks, the
// file names the OpenMoji renderer and the results script rely on, the UNet stage's options and
// architecture record, the recipe called as library code, and the errors.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "p2l/io/image.h"
#include "p2l/io/safetensors.h"
#include "p2l/train/emoji_dataset.h"
#include "p2l/train/emoji_recipe.h"
#include "scratch_dir.h"

namespace p2l::test {
namespace {

namespace fs = std::filesystem;

constexpr char kTrainCliScratch[] = "train_cli";

// Two styles × bases A..F (E with two skin tones in Google's), each image a distinct flat colour.
class TrainTestImages : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = scratch_dir<kTrainCliScratch>() /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    int colour = 0;
    for (const std::string style : {"google", "twitter"}) {
      const auto package = root_ / "cache" / ("emoji-datasource-" + style) / "package";
      fs::create_directories(package / "img" / style / "64");
      nlohmann::json entries = nlohmann::json::array();
      for (const std::string base : {"A", "B", "C", "D", "E", "F"}) {
        auto write = [&](const std::string& file) {
          const float level = -1.0f + 0.08f * static_cast<float>(colour++);
          io::save_png((package / "img" / style / "64" / file).string(),
                       torch::full({1, 3, 64, 64}, level));
          colours_[style + "/" + file] = level;
        };
        nlohmann::json e = {{"unified", base}, {"name", "emoji " + base},
                            {"subcategory", "test-things"}, {"image", base + ".png"},
                            {"has_img_" + style, base != "C" || style == "twitter"}};
        write(base + ".png");
        if (base == "E" && style == "google") {
          e["skin_variations"] = {{"1F3FB",
                                   {{"unified", "E-1F3FB"},
                                    {"image", "E-1F3FB.png"},
                                    {"has_img_google", true}}}};
          write("E-1F3FB.png");
        }
        entries.push_back(e);
      }
      std::ofstream(package / "emoji.json") << entries.dump();
    }
    // Test split: C (Twitter only), D, E, F.
    std::ofstream(root_ / "split.txt") << "# test bases\nC\nD\nE\nF\n";
  }

  std::string args(const std::string& count, const std::string& data = "cache") const {
    return "train test-images --data " + (root_ / data).string() + " --split " +
           (root_ / "split.txt").string() + " --count " + count + " --images-out " +
           (root_ / "out").string();
  }

  fs::path root_;
  std::map<std::string, float> colours_;
};

TEST_F(TrainTestImages, PicksSpreadTestBasesAlternatingStyles) {
  const auto r = run_p2l(args("2"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Test bases in listing order: D, E, F (Google's listing), then C (only Twitter has it).
  // Two of four, evenly spaced: D (index 0, Google) and F (index 2, Twitter).
  const auto out = root_ / "out";
  ASSERT_TRUE(fs::exists(out / "000_google_D.png"));
  ASSERT_TRUE(fs::exists(out / "001_twitter_F.png"));
  int pngs = 0;
  for (const auto& entry : fs::directory_iterator(out)) pngs += entry.path().extension() == ".png";
  EXPECT_EQ(pngs, 2);
  // The pictures are the packages' images, unchanged.
  const auto d = io::load_image((out / "000_google_D.png").string());
  EXPECT_NEAR(d.mean().item<double>(), colours_.at("google/D.png"), 1e-2);
  const auto f = io::load_image((out / "001_twitter_F.png").string());
  EXPECT_NEAR(f.mean().item<double>(), colours_.at("twitter/F.png"), 1e-2);
  const auto captions = nlohmann::json::parse(slurp(out / "captions.json"));
  EXPECT_EQ(captions.at("000_google_D.png"), "emoji d, test things, google style");
  EXPECT_EQ(captions.at("001_twitter_F.png"), "emoji f, test things, twitter style");
}

TEST_F(TrainTestImages, EveryTestBaseOnceWithTheStyleItHas) {
  const auto r = run_p2l(args("4"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto out = root_ / "out";
  // E: its first listed image (no skin tone); C: Google has none, so Twitter's.
  for (const auto* name : {"000_google_D.png", "001_twitter_E.png", "002_google_F.png",
                           "003_twitter_C.png"})
    EXPECT_TRUE(fs::exists(out / name)) << name;
  EXPECT_NEAR(io::load_image((out / "001_twitter_E.png").string()).mean().item<double>(),
              colours_.at("twitter/E.png"), 1e-2);
}

// The Iconify styles (rendered by scripts/render_iconify.py into cache/iconify/<style>/): captions
// and base emoji from emoji.json, so a held-out emoji is held out in every style.
TEST_F(TrainTestImages, IconifyStylesShareCaptionsAndTheSplit) {
  const auto folder = root_ / "cache" / "iconify" / "streamline";
  fs::create_directories(folder / "64");
  for (const std::string code : {"a", "e-1f3fb"})
    io::save_png((folder / "64" / (code + ".png")).string(), torch::zeros({1, 3, 64, 64}));
  std::ofstream(folder / "index.json")
      << R"([{"unified": "A", "image": "a.png", "icon": "emoji-a"},
             {"unified": "E-1F3FB", "image": "e-1f3fb.png", "icon": "emoji-e-light-skin-tone"}])";
  const auto cache = (root_ / "cache").string();
  const auto items = train::list_emoji(cache, {"twitter", "streamline"});
  std::vector<train::EmojiItem> streamline;
  for (const auto& item : items)
    if (item.style == "streamline") streamline.push_back(item);
  ASSERT_EQ(streamline.size(), 2u);
  EXPECT_EQ(streamline[0].base, "A");
  EXPECT_EQ(streamline[0].caption, "emoji a, test things, streamline style");
  EXPECT_EQ(streamline[1].base, "E");
  EXPECT_EQ(streamline[1].caption, "emoji e, light skin tone, test things, streamline style");
  EXPECT_EQ(items.size(), 6u + 2u);  // Twitter's six and the two renders
  // E is a test base: its streamline image is in the test split, A's in the training split.
  const auto tests = train::read_test_bases((root_ / "split.txt").string());
  const auto test_set = train::load_emoji_split(items, tests, true);
  EXPECT_EQ(std::count_if(test_set.items.begin(), test_set.items.end(),
                          [](const auto& item) { return item.style == "streamline"; }),
            1);
  // The shipped model's styles by default; errors name the style or the file.
  // Google's 6 (no C; E's skin tone) and Twitter's 6.
  EXPECT_EQ(train::list_emoji(cache).size(), 12u);
  EXPECT_THROW(train::list_emoji(cache, {"fluent"}), Error);
  EXPECT_THROW(train::list_emoji(cache, {"fxemoji"}), Error);  // not rendered
  std::ofstream(folder / "index.json") << R"([{"unified": "Z", "image": "a.png"}])";
  EXPECT_THROW(train::list_emoji(cache, {"streamline"}), Error);
}

TEST_F(TrainTestImages, BadInputIsOneLineError) {
  expect_one_line_error(run_p2l(args("5")), "test split has 4 base emoji");
  expect_one_line_error(run_p2l("train test-images --data " + (root_ / "cache").string() +
                                " --split " + (root_ / "split.txt").string()),
                        "--images-out");
  expect_one_line_error(run_p2l(args("2", "nowhere")),
                        "fetch_emoji.sh");
  // The shipped recipe trains on six styles; the made-up cache has two rendered.
  expect_one_line_error(run_p2l("train tokenizer --data " + (root_ / "cache").string() +
                                " --split " + (root_ / "split.txt").string() + " --run " +
                                (root_ / "run").string()),
                        "noto-v1");
}

// A new text encoder and UNet for the shipped autoencoder (`--autoencoder-from`), with the
// UNet stage's options, trained for two steps on the made-up images and exported.
TEST_F(TrainTestImages, UnetOnAShippedAutoencoder) {
  const auto model = fs::path(P2L_MODELS_DIR) / "emoji-64";
  const std::string common = " --data " + (root_ / "cache").string() + " --split " +
                             (root_ / "split.txt").string() + " --run " + (root_ / "run").string() +
                             " --autoencoder-from " + model.string() +
                             " --styles google,twitter";  // the made-up cache has these two
  const auto trained = run_p2l("train unet" + common +
                               " --unet-steps 2 --unet-batch 2 --monitor-every 0 --unet-mirror "
                               "--unet-snr-gamma 5 --unet-noise-offset 0.2"  // not the default 0.1
                               " --unet-name-dropout 0.5 --unet-balance-bases");
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  std::ifstream in(root_ / "run" / "unet.json");
  const auto record = nlohmann::json::parse(in);
  EXPECT_EQ(record["mirror"], true);
  EXPECT_EQ(record["snr_gamma"], 5.0);
  EXPECT_EQ(record["noise_offset"], 0.2);
  EXPECT_EQ(record["name_dropout"], 0.5);
  EXPECT_EQ(record["balance_bases"], true);
  EXPECT_EQ(record["steps"], 2);

  const auto exported = run_p2l("train export" + common + " --out " + (root_ / "model").string());
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  // The autoencoder and tokenizer are the shipped ones, byte for byte.
  for (const auto* file : {"vae/diffusion_pytorch_model.safetensors", "tokenizer/vocab.json",
                           "tokenizer/merges.txt"})
    EXPECT_EQ(slurp(root_ / "model" / file), slurp(model / file)) << file;
  // The UNet is the one trained here, not the shipped one.
  io::SafeTensorsFile ours((root_ / "model" / "unet" / "diffusion_pytorch_model.safetensors").string());
  io::SafeTensorsFile shipped((model / "unet" / "diffusion_pytorch_model.safetensors").string());
  const std::string name = "conv_in.weight";
  EXPECT_FALSE(torch::equal(ours.load(name), shipped.load(name)));
}

// The text encoder's size and the UNet's attention levels and widths are the UNet stage's to
// choose; export builds what the run trained without being told, and a resumed run cannot
// silently change them.
TEST_F(TrainTestImages, ArchitectureIsRecordedByTheUnetStageAndUsedByExport) {
  const auto model = fs::path(P2L_MODELS_DIR) / "emoji-64";
  const std::string common = " --data " + (root_ / "cache").string() + " --split " +
                             (root_ / "split.txt").string() + " --run " + (root_ / "run").string() +
                             " --autoencoder-from " + model.string() +
                             " --styles google,twitter";  // the made-up cache has these two
  const std::string unet = "train unet" + common + " --unet-batch 2 --monitor-every 0";
  const auto trained =
      run_p2l(unet + " --unet-steps 2 --text-width 32 --text-layers 1 --unet-attention 1,1,0"
                     " --unet-channels 32,64,64");
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  {  // the shipped recipe's offset noise and balanced draws are the defaults
    std::ifstream in(root_ / "run" / "unet.json");
    const auto record = nlohmann::json::parse(in);
    EXPECT_EQ(record["noise_offset"], 0.1);
    EXPECT_EQ(record["balance_bases"], true);
  }
  const auto exported = run_p2l("train export" + common + " --out " + (root_ / "model").string());
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  std::ifstream text_in(root_ / "model" / "text_encoder" / "config.json");
  const auto text = nlohmann::json::parse(text_in);
  EXPECT_EQ(text["hidden_size"], 32);
  EXPECT_EQ(text["intermediate_size"], 128);
  EXPECT_EQ(text["num_hidden_layers"], 1);
  std::ifstream unet_in(root_ / "model" / "unet" / "config.json");
  const auto unet_config = nlohmann::json::parse(unet_in);
  EXPECT_EQ(unet_config["cross_attention_dim"], 32);
  EXPECT_EQ(unet_config["down_block_types"],
            nlohmann::json({"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"}));
  EXPECT_EQ(unet_config["block_out_channels"], nlohmann::json({32, 64, 64}));
  const auto sampled = run_p2l("sample -m " + (root_ / "model").string() + " -p \"a face\" --steps 2 -o " +
                               (root_ / "s.png").string());
  EXPECT_EQ(sampled.exit_code, 0) << sampled.err;

  // Resuming with another size is refused; --no-resume starts over with it.
  expect_one_line_error(run_p2l(unet + " --unet-steps 3"), "--unet-attention");
  expect_one_line_error(
      run_p2l(unet + " --unet-steps 3 --text-width 32 --text-layers 1 --unet-attention 0,1,1"),
      "UNet attention 1,1,0 and channels 32,64,64");
  expect_one_line_error(
      run_p2l(unet + " --unet-steps 3 --text-width 32 --text-layers 1 --unet-attention 1,1,0"),
      "--unet-channels");
  // Restarted at the widths every run had before --unet-channels (not today's default).
  const auto restarted = run_p2l(unet + " --unet-steps 2 --no-resume --unet-channels 32,64,128");
  EXPECT_EQ(restarted.exit_code, 0) << restarted.err;
  {  // a record written before --unet-channels existed means the widths every run had then
    std::ofstream old(root_ / "run" / "architecture.json");
    old << R"({"text_width": 64, "text_layers": 2, "unet_attention": [0, 1, 1]})";
  }
  const auto reexported = run_p2l("train export" + common + " --out " + (root_ / "model").string());
  ASSERT_EQ(reexported.exit_code, 0) << reexported.err;
  std::ifstream reexported_in(root_ / "model" / "unet" / "config.json");
  EXPECT_EQ(nlohmann::json::parse(reexported_in)["block_out_channels"],
            nlohmann::json({32, 64, 128}));
  expect_one_line_error(run_p2l("train export" + common + " --text-width 32"),
                        "--text-width, --text-layers, --unet-attention and --unet-channels are "
                        "for the unet stage");
  expect_one_line_error(run_p2l("train export" + common + " --unet-channels 32,64,64"),
                        "are for the unet stage");
  expect_one_line_error(run_p2l(unet + " --unet-steps 2 --no-resume --text-width 30"),
                        "multiple of 4");
  expect_one_line_error(run_p2l(unet + " --unet-steps 2 --no-resume --unet-attention 1,1"),
                        "--unet-attention");
  expect_one_line_error(run_p2l(unet + " --unet-steps 2 --no-resume --unet-attention 0,2,1"),
                        "--unet-attention");
  expect_one_line_error(run_p2l(unet + " --unet-steps 2 --no-resume --unet-channels 32,64"),
                        "--unet-channels");
  expect_one_line_error(run_p2l(unet + " --unet-steps 2 --no-resume --unet-channels 32,48,64"),
                        "--unet-channels: 48 is not a multiple of 32");
}

TEST_F(TrainTestImages, UnetOptionErrorsAreOneLine) {
  expect_one_line_error(run_p2l("train vae --autoencoder-from " +
                                (fs::path(P2L_MODELS_DIR) / "emoji-64").string()),
                        "--autoencoder-from is for the unet and export stages");
  expect_one_line_error(run_p2l("train unet --unet-snr-gamma -1"), "--unet-snr-gamma");
  expect_one_line_error(run_p2l("train unet --unet-noise-offset -0.1"), "--unet-noise-offset");
  expect_one_line_error(run_p2l("train unet --unet-name-dropout 1.5"), "--unet-name-dropout");
  expect_one_line_error(run_p2l("train unet --device tpu"), "unknown device 'tpu'");
  if (!torch::cuda::is_available())
    expect_one_line_error(run_p2l("train unet --device cuda"), "CUDA is not available");
  expect_one_line_error(run_p2l("train unet --run " + (root_ / "run").string() +
                                " --autoencoder-from " + (root_ / "no-model").string()),
                        "no-model");
}

// The recipe as library code (p2l/train/emoji_recipe.h), without the binary: a stage's result
// line goes to the caller, and settings that cannot go together are refused before any work.
TEST_F(TrainTestImages, TheRecipeRunsFromTheLibrary) {
  auto recipe = train::EmojiRecipe::shipped();
  recipe.stage = "test-images";
  recipe.data = (root_ / "cache").string();
  recipe.split = (root_ / "split.txt").string();
  recipe.count = 2;
  recipe.images_out = (root_ / "library").string();
  std::vector<std::string> lines;
  recipe.on_result = [&](const std::string& line) { lines.push_back(line); };
  train::run_recipe(recipe);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("test-images: 2 of 4 test base emoji -> ", 0), 0u) << lines[0];
  EXPECT_TRUE(fs::exists(root_ / "library" / "000_google_D.png"));
  EXPECT_TRUE(fs::exists(root_ / "library" / "001_twitter_F.png"));

  auto refused = [](train::EmojiRecipe r, const std::string& expected) {
    try {
      train::run_recipe(r);
      ADD_FAILURE() << "accepted; expected: " << expected;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  };
  auto r = recipe;
  r.stage = "vae";
  r.autoencoder_from = "models/emoji-64";
  refused(r, "--autoencoder-from is for the unet and export stages");
  r = recipe;
  r.unet_channels = {32, 64, 100};
  refused(r, "--unet-channels: 100 is not a multiple of 32");
  r = recipe;
  r.stage = "all";  // only the UNet stage trains on a GPU
  r.unet.device = torch::Device(torch::kCUDA);
  refused(r, "train all: --device cuda is for the unet stage");
  r = recipe;
  r.stage = "everything";
  refused(r, "unknown stage 'everything'");
  EXPECT_EQ(lines.size(), 1u);  // nothing ran
}

}  // namespace
}  // namespace p2l::test
