// Checkpoint loading and writing: layout round trips, F16 storage, and clear errors for bad
// weight files (the safetensors-level defects are in safetensors_test.cpp).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "goldens.h"
#include "p2l/error.h"

namespace p2l::test {
namespace {

namespace fs = std::filesystem;
using model::Layout;

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("p2l_ckpt_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A copy of the golden diffusers folder whose UNet tensors pass through `edit`.
fs::path edited_diffusers_copy(
    const std::string& name,
    const std::function<void(std::map<std::string, torch::Tensor>&)>& edit) {
  const fs::path dir = fresh_dir(name);
  fs::copy(Goldens::get().diffusers_dir(), dir, fs::copy_options::recursive);
  const auto file = (dir / "unet" / "diffusion_pytorch_model.safetensors").string();
  auto tensors = io::SafeTensorsFile(file).load_all();
  edit(tensors);
  std::vector<std::pair<std::string, torch::Tensor>> list(tensors.begin(), tensors.end());
  io::save_safetensors(file, list);
  return dir;
}

std::string load_error(const std::string& path, const model::LoadOptions& options = {}) {
  try {
    model::load_stable_diffusion(path, options);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void expect_same_parameters(torch::nn::Module& a, torch::nn::Module& b, double tol = 0) {
  auto pb = b.named_parameters();
  for (const auto& item : a.named_parameters()) {
    ASSERT_TRUE(pb.contains(item.key())) << item.key();
    if (tol == 0)
      EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
    else
      EXPECT_TRUE(torch::allclose(item.value(), pb[item.key()], tol, tol)) << item.key();
  }
}

TEST(Checkpoint, DetectsLayouts) {
  EXPECT_EQ(model::detect_layout(Goldens::get().diffusers_dir()), Layout::Diffusers);
  EXPECT_EQ(model::detect_layout(Goldens::get().single_file()), Layout::SingleFile);
}

TEST(Checkpoint, WritesBothLayoutsThatLoadBack) {
  auto sd = load_golden_model(Layout::SingleFile);
  const auto dir = fresh_dir("roundtrip");
  model::save_diffusers(sd, (dir / "folder").string(), torch::kFloat,
                        Goldens::get().diffusers_dir() + "/tokenizer");
  auto back = model::load_stable_diffusion((dir / "folder").string());
  ASSERT_TRUE(back.tokenizer);
  expect_same_parameters(*sd.unet, *back.unet);
  expect_same_parameters(*sd.vae, *back.vae);
  expect_same_parameters(*sd.text_encoder, *back.text_encoder);
  EXPECT_EQ(back.config.unet.to_json(), sd.config.unet.to_json());

  // The diffusers files we write use the diffusers names and shapes: every golden tensor name
  // and shape is present in ours.
  for (const char* part : {"unet/diffusion_pytorch_model", "vae/diffusion_pytorch_model",
                           "text_encoder/model"}) {
    io::SafeTensorsFile ours((dir / "folder" / part).string() + ".safetensors");
    io::SafeTensorsFile theirs(Goldens::get().diffusers_dir() + "/" + part + ".safetensors");
    EXPECT_EQ(ours.tensors().size(), theirs.tensors().size()) << part;
    for (const auto& info : theirs.tensors()) {
      ASSERT_TRUE(ours.contains(info.name)) << info.name;
      EXPECT_EQ(ours.info(info.name).shape, info.shape) << info.name;
    }
  }

  // Single file, with the YAML beside it.
  const auto single = dir / "model.safetensors";
  model::save_single_file(sd, single.string());
  fs::copy_file(fs::path(Goldens::get().single_file()).replace_extension(".yaml"),
                dir / "model.yaml");
  auto back2 = model::load_stable_diffusion(single.string());
  expect_same_parameters(*sd.unet, *back2.unet);
  expect_same_parameters(*sd.vae, *back2.vae);
}

TEST(Checkpoint, HalfPrecisionStorageIsConvertedToFloat32) {
  auto sd = load_golden_model(Layout::Diffusers);
  const auto dir = fresh_dir("f16");
  model::save_diffusers(sd, dir.string(), torch::kHalf);
  auto half = model::load_stable_diffusion(dir.string());
  EXPECT_EQ(half.storage_dtype, "F16");
  EXPECT_EQ(half.dtype(), torch::kFloat);
  for (const auto& item : sd.unet->named_parameters()) {
    auto want = item.value().to(torch::kHalf).to(torch::kFloat);
    EXPECT_TRUE(torch::equal(half.unet->named_parameters()[item.key()], want)) << item.key();
  }
  torch::NoGradGuard no_grad;
  const auto& g = Goldens::get();
  auto out = half.unet->forward(g.tensor("unet.sample"), g.tensor("unet.timesteps"),
                                g.tensor("unet.encoder_hidden_states"));
  // F16 weights: about 1e-3 relative, not the F32 tolerance.
  EXPECT_LT(relative_error(out, g.tensor("unet.out")), 1e-2);
}

TEST(Checkpoint, ExtraTensorsAreIgnored) {
  const auto dir = edited_diffusers_copy("extra", [](auto& t) {
    t["model_ema.decay"] = torch::tensor({0.9999f});
    t["betas"] = torch::zeros({1000});
  });
  auto sd = model::load_stable_diffusion(dir.string());
  auto golden = load_golden_model(Layout::Diffusers);
  expect_same_parameters(*golden.unet, *sd.unet);
}

TEST(Checkpoint, MissingTensorIsNamedWithExpectedShape) {
  const std::string victim = "down_blocks.0.resnets.0.conv1.weight";
  const auto dir = edited_diffusers_copy("missing", [&](auto& t) { t.erase(victim); });
  const auto msg = load_error(dir.string());
  EXPECT_NE(msg.find("missing tensor"), std::string::npos) << msg;
  EXPECT_NE(msg.find(victim), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected shape"), std::string::npos) << msg;
}

TEST(Checkpoint, MisShapedTensorIsNamedWithBothShapes) {
  const std::string victim = "conv_in.weight";
  const auto dir = edited_diffusers_copy("misshaped", [&](auto& t) {
    t[victim] = torch::zeros({3, 3});
  });
  const auto msg = load_error(dir.string());
  EXPECT_NE(msg.find(victim), std::string::npos) << msg;
  EXPECT_NE(msg.find("[3, 3]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expects"), std::string::npos) << msg;
}

TEST(Checkpoint, DirectoryThatIsNotAModel) {
  const auto dir = fresh_dir("empty");
  std::ofstream(dir / "notes.txt") << "hello";
  EXPECT_NE(load_error(dir.string()).find("not a model"), std::string::npos);
  EXPECT_NE(load_error((dir / "notes.txt").string()).find("not a model"), std::string::npos);
  EXPECT_NE(load_error((dir / "absent").string()).find("no such"), std::string::npos);
  std::ofstream(dir / "model.ckpt") << "pickle";
  EXPECT_NE(load_error((dir / "model.ckpt").string()).find("pickle"), std::string::npos);
}

TEST(Checkpoint, TruncatedWeightFileInAModelFolder) {
  const auto dir = fresh_dir("truncated");
  fs::copy(Goldens::get().diffusers_dir(), dir, fs::copy_options::recursive);
  const auto file = dir / "vae" / "diffusion_pytorch_model.safetensors";
  fs::resize_file(file, fs::file_size(file) / 2);
  const auto msg = load_error(dir.string());
  EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
}

TEST(Checkpoint, SingleFileNeedsItsYamlForANonStandardTextEncoder) {
  // Copy the single file without its YAML: where SD v1's 12 text heads don't fit the width,
  // the error says how to fix it; --config gives the right model.
  const auto dir = fresh_dir("noyaml");
  const auto copy = dir / "tiny.safetensors";
  fs::copy_file(Goldens::get().single_file(), copy);
  auto golden = load_golden_model(Layout::SingleFile);
  if (golden.config.text.hidden_size % model::ClipTextConfig::sd_v1().num_heads != 0) {
    const auto msg = load_error(copy.string());
    EXPECT_NE(msg.find("--config"), std::string::npos) << msg;
  }
  model::LoadOptions options;
  options.config_yaml = fs::path(Goldens::get().single_file()).replace_extension(".yaml").string();
  auto sd = model::load_stable_diffusion(copy.string(), options);
  expect_same_parameters(*golden.text_encoder, *sd.text_encoder);
  options.config_yaml = (dir / "absent.yaml").string();
  EXPECT_NE(load_error(copy.string(), options).find("absent.yaml"), std::string::npos);
}

TEST(Checkpoint, ConfigFromShapesMatchesTheYaml) {
  io::SafeTensorsFile file(Goldens::get().single_file());
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& info : file.tensors()) shapes[info.name] = info.shape;
  auto golden = load_golden_model(Layout::SingleFile);
  // Everything but the head counts (which a single file does not carry) comes from shapes.
  auto inferred = model::config_from_original_yaml(
      fs::path(Goldens::get().single_file()).replace_extension(".yaml").string(), shapes);
  EXPECT_EQ(inferred.unet.block_out_channels, golden.config.unet.block_out_channels);
  EXPECT_EQ(inferred.unet.attention_levels, golden.config.unet.attention_levels);
  EXPECT_EQ(inferred.vae.block_out_channels, golden.config.vae.block_out_channels);
  EXPECT_EQ(inferred.text.hidden_size, golden.config.text.hidden_size);
}

// `p2l info` reads headers and configs only: the summary agrees with the model the loader builds
// (configuration, storage dtype, parameter counts) for both layouts, F16 storage included.
TEST(Checkpoint, SummaryFromHeadersMatchesTheLoadedModel) {
  const std::vector<std::string> models = {
      Goldens::get().diffusers_dir(), Goldens::get().single_file(),
      (fs::path(P2L_MODELS_DIR) / "emoji-64").string()};
  for (const auto& path : models) {
    SCOPED_TRACE(path);
    const auto summary = model::describe_model(path);
    auto sd = model::load_stable_diffusion(path);
    EXPECT_EQ(summary.layout, sd.layout);
    EXPECT_EQ(summary.storage_dtype, sd.storage_dtype);
    EXPECT_EQ(summary.config.unet.to_json(), sd.config.unet.to_json());
    EXPECT_EQ(summary.config.vae.to_json(), sd.config.vae.to_json());
    EXPECT_EQ(summary.config.text.to_json(), sd.config.text.to_json());
    EXPECT_EQ(summary.config.schedule.to_json(), sd.config.schedule.to_json());
    EXPECT_EQ(summary.text_parameters, model::parameter_count(*sd.text_encoder));
    EXPECT_EQ(summary.unet_parameters, model::parameter_count(*sd.unet));
    EXPECT_EQ(summary.vae_parameters, model::parameter_count(*sd.vae));
    EXPECT_EQ(summary.tokenizer, sd.tokenizer != nullptr);
  }
  EXPECT_THROW(model::describe_model(fresh_dir("not_a_model").string()), Error);
}

// Every safetensors file of an export carries the metadata the Hugging Face loaders expect
// ("format": "pt"; transformers' CLIPTextModel.from_pretrained refuses a file without it), as do
// the bundled model's files.
TEST(Checkpoint, ExportedFilesCarryTheFormatHuggingFaceExpects) {
  auto sd = model::load_stable_diffusion(Goldens::get().diffusers_dir());
  const fs::path dir = fresh_dir("hf_metadata");
  model::save_diffusers(sd, (dir / "folder").string(), torch::kHalf);
  model::save_single_file(sd, (dir / "single.safetensors").string(), torch::kHalf);
  int files = 0;
  for (const auto& root : {dir, fs::path(P2L_MODELS_DIR) / "emoji-64"})
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
      if (entry.path().extension() != ".safetensors") continue;
      ++files;
      const io::SafeTensorsFile file(entry.path().string());
      const auto it = file.metadata().find("format");
      ASSERT_NE(it, file.metadata().end()) << entry.path();
      EXPECT_EQ(it->second, "pt") << entry.path();
    }
  EXPECT_EQ(files, 4 + 4);  // the export (three components, one single file), the bundled model
}

}  // namespace
}  // namespace p2l::test

