// Inputs that fuzzing (docs/fuzzing.md, fuzz/) found to end in something other than one
// p2l::Error: each goes through the API of the fuzz target that found it. The files and what
// they did are listed in tests/data/regressions/README.md.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "error_of.h"
#include "goldens.h"
#include "p2l/diffusion/schedule.h"
#include "p2l/io/json_file.h"
#include "p2l/io/safetensors.h"
#include "p2l/model/checkpoint.h"
#include "p2l/model/clip_text.h"
#include "p2l/model/unet.h"
#include "p2l/model/vae.h"
#include "p2l/operators/measurement.h"

namespace fs = std::filesystem;

namespace p2l {
namespace {

const fs::path kRegressions = fs::path(P2L_TEST_DATA) / "regressions";

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every config parser on the same JSON, as fuzz/fuzz_model_json.cpp does; each error message.
std::vector<std::string> config_errors(const nlohmann::json& j) {
  return {test::error_of([&] { model::UNetConfig::from_json(j); }),
          test::error_of([&] { model::VaeConfig::from_json(j); }),
          test::error_of([&] { model::ClipTextConfig::from_json(j); }),
          test::error_of([&] { diffusion::ScheduleConfig::from_json(j); })};
}

TEST(FuzzRegressions, ConfigThatIsNotAnObjectIsOneError) {
  const auto path = kRegressions / "fuzz_config_not_an_object.json";
  const auto j = io::parse_json(read_bytes(path), path.string());
  for (const auto& message : config_errors(j)) EXPECT_NE(message.find("config: "), std::string::npos) << message;
}

TEST(FuzzRegressions, ConfigIntegerBeyond64BitsIsOneErrorNamingTheKey) {
  const auto path = kRegressions / "fuzz_config_integer_beyond_64_bits.json";
  const auto j = io::parse_json(read_bytes(path), path.string());
  const auto errors = config_errors(j);
  EXPECT_NE(errors[0].find("unet config: in_channels must be a whole number"), std::string::npos)
      << errors[0];
  EXPECT_NE(errors[1].find("vae config: in_channels must be a whole number"), std::string::npos)
      << errors[1];
  EXPECT_NE(errors[2].find("text encoder config: vocab_size must be a whole number"),
            std::string::npos)
      << errors[2];
  EXPECT_NE(errors[3].find("scheduler config: num_train_timesteps must be a whole number"),
            std::string::npos)
      << errors[3];
  // The other values on their own: a list entry, and an unsigned beyond int64_t.
  EXPECT_NE(test::error_of([&] {
              model::UNetConfig::from_json({{"block_out_channels", j["block_out_channels"]}});
            }).find("block_out_channels must be a whole number"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              model::UNetConfig::from_json({{"attention_head_dim", j["attention_head_dim"]}});
            }).find("attention_head_dim must be a whole number"),
            std::string::npos);
}

TEST(FuzzRegressions, ConfigWholeNumberWrittenAsARealIsRead) {
  // What json_int accepts instead: 4.0 is 4 (some tools write every number as a real).
  EXPECT_EQ(model::VaeConfig::from_json({{"latent_channels", 4.0}}).latent_channels, 4);
  EXPECT_NE(test::error_of([] { model::VaeConfig::from_json({{"latent_channels", 3.5}}); })
                .find("latent_channels must be a whole number"),
            std::string::npos);
}

TEST(FuzzRegressions, MeasurementWhoseFormatIsNotAStringIsOneError) {
  const auto path = (kRegressions / "fuzz_measurement_format_not_a_string.json").string();
  EXPECT_NE(test::error_of([&] { operators::load_measurement(path); })
                .find(path + ": not a p2l measurement"),
            std::string::npos);
}

TEST(FuzzRegressions, MeasurementSeedBeyond64BitsIsOneErrorNamingTheKey) {
  // The operator's seed is 8.9e85; the top-level seed and the sizes go through the same check.
  const auto path = (kRegressions / "fuzz_measurement_seed_beyond_64_bits.json").string();
  EXPECT_NE(test::error_of([&] { operators::load_measurement(path); })
                .find("random inpainting: seed must be a whole number from 0 to 2^64 - 1"),
            std::string::npos);
}

// The golden single file's YAML with one value changed, read against its tensor shapes (as
// fuzz/fuzz_yaml_config.cpp does).
std::string yaml_error(const std::string& name) {
  io::SafeTensorsFile file(test::Goldens::get().single_file());
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& info : file.tensors()) shapes[info.name] = info.shape;
  const auto path = (kRegressions / name).string();
  return test::error_of([&] { model::config_from_original_yaml(path, shapes); });
}

TEST(FuzzRegressions, YamlChannelCountThatOverflowsIsOneError) {
  // model_channels 2^63 - 1 times channel_mult 2 overflowed int64_t.
  EXPECT_NE(yaml_error("fuzz_yaml_channels_overflow.yaml")
                .find("model_channels × channel_mult: 9223372036854775807 × 1 is not a channel count"),
            std::string::npos);
}

TEST(FuzzRegressions, YamlWithSeventyLevelsIsOneError) {
  // 2^level for level 64 and beyond was a shift past the width of int64_t.
  EXPECT_NE(yaml_error("fuzz_yaml_70_levels.yaml").find("channel_mult has 70 levels"),
            std::string::npos);
}

}  // namespace
}  // namespace p2l
