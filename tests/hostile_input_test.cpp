// Hostile and absurd input (issue 30): every case ends in one p2l::Error (one line from the CLI,
// non-zero exit) before any large allocation — never a crash, a hang or a silent wrong answer.
// The inputs that exposed the defects are in tests/data/regressions (see its README).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "cli_runner.h"
#include "error_of.h"
#include "goldens.h"
#include "p2l/eval/inputs.h"
#include "p2l/eval/results.h"
#include "p2l/io/image.h"
#include "p2l/io/json_file.h"
#include "p2l/io/safetensors.h"
#include "p2l/model/checkpoint.h"
#include "p2l/model/memory.h"
#include "p2l/model/tokenizer.h"
#include "p2l/operators/measurement.h"
#include "scratch_dir.h"
#include "shipped_model.h"

namespace p2l::test {
namespace {

namespace fs = std::filesystem;

using NamedList = std::vector<std::pair<std::string, torch::Tensor>>;

constexpr char kScratch[] = "hostile";
const fs::path& scratch() { return scratch_dir<kScratch>(); }
const fs::path kRegressions = fs::path(P2L_TEST_DATA) / "regressions";

std::string nested(int depth, const std::string& inner = "1") {
  return std::string(depth, '[') + inner + std::string(depth, ']');
}

void write_file(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// A diffusers folder whose files are links to `source`'s, so a test can replace one of them.
fs::path linked_copy(const fs::path& source, const std::string& name) {
  const fs::path dir = scratch() / name;
  fs::remove_all(dir);
  for (const auto& entry : fs::recursive_directory_iterator(source)) {
    const auto target = dir / fs::relative(entry.path(), source);
    if (entry.is_directory()) {
      fs::create_directories(target);
    } else {
      fs::create_directories(target.parent_path());
      fs::create_symlink(fs::absolute(entry.path()), target);
    }
  }
  return dir;
}

void replace_json(const fs::path& path, const nlohmann::json& j) {
  fs::remove(path);
  write_file(path, j.dump(2));
}

TEST(HostileInput, JsonNestingIsBoundedBeforeParsing) {
  const auto deep = nested(100000);
  EXPECT_NE(error_of([&] { io::parse_json(deep, "x.json"); }).find("x.json: JSON nests deeper than 64"),
            std::string::npos);
  // Brackets inside strings are text, not nesting; escaped quotes do not end a string.
  const auto text = R"({"a": "[[[[\"[[[[", "b": [[1]]})";
  EXPECT_EQ(io::parse_json(text, "x.json")["b"][0][0], 1);
  EXPECT_NO_THROW(io::parse_json(nested(io::kMaxJsonDepth), "x.json"));
  EXPECT_NE(error_of([&] { io::parse_json(nested(io::kMaxJsonDepth + 1), "x.json"); }),
            "(no p2l::Error)");
}

// The regression file: a safetensors header whose "shape" nests 100,000 arrays deep (SIGSEGV
// before); the same in "data_offsets".
TEST(HostileInput, DeeplyNestedSafetensorsHeaderIsOneLine) {
  const auto file = kRegressions / "deep_nest_shape.safetensors";
  ASSERT_TRUE(fs::exists(file));
  EXPECT_NE(error_of([&] { io::SafeTensorsFile{file.string()}; }).find("nests deeper"),
            std::string::npos);
  expect_one_line_error(run_p2l("info " + file.string()), "nests deeper");

  const std::string header =
      R"({"t":{"dtype":"F32","shape":[1],"data_offsets":)" + nested(100000, "0") + "}}";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  write_file(scratch() / "deep_offsets.safetensors", bytes + header + std::string(4, '\0'));
  EXPECT_NE(error_of([&] { io::SafeTensorsFile{(scratch() / "deep_offsets.safetensors").string()}; })
                .find("nests deeper"),
            std::string::npos);
}

TEST(HostileInput, DeeplyNestedModelFilesAreOneLine) {
  const fs::path source = Goldens::get().diffusers_dir();
  for (const std::string file : {"tokenizer/vocab.json", "text_encoder/config.json",
                                 "unet/config.json", "model_index.json"}) {
    const auto dir = linked_copy(source, "deep_model");
    fs::remove(dir / file);
    write_file(dir / file, "{\"a\": " + nested(100000) + "}");
    const auto r = run_p2l("sample -m " + dir.string() + " -p x --steps 1 -o " +
                           (scratch() / "deep.png").string());
    expect_one_line_error(r, "nests deeper than 64");
    EXPECT_NE(r.err.find(file), std::string::npos) << r.err;
  }
}

TEST(HostileInput, DeeplyNestedMeasurementAndRecordsAreOneLine) {
  write_file(scratch() / "deep_measurement.json", "{\"format\": " + nested(100000) + "}");
  EXPECT_NE(error_of([&] {
              operators::load_measurement((scratch() / "deep_measurement.json").string());
            }).find("nests deeper"),
            std::string::npos);
  write_file(scratch() / "deep_results" / "results.jsonl", nested(100000) + "\n");
  EXPECT_NE(error_of([&] {
              eval::read_results((scratch() / "deep_results" / "results.jsonl").string());
            }).find("results.jsonl:1: JSON nests deeper"),
            std::string::npos);
}

// A config.json that claims more than the weights hold is refused before any module is built
// (a huge num_hidden_layers hung, then allocated 9.9 GB before std::bad_alloc).
TEST(HostileInput, ConfigsAreBoundedAndCheckedAgainstTheWeights) {
  const fs::path source = Goldens::get().diffusers_dir();
  const auto text_config = io::read_json((source / "text_encoder" / "config.json").string());
  const auto unet_config = io::read_json((source / "unet" / "config.json").string());
  const auto vae_config = io::read_json((source / "vae" / "config.json").string());
  struct Case {
    std::string file;
    nlohmann::json config;
    std::string expected;
  };
  auto with = [](nlohmann::json j, const std::string& key, const nlohmann::json& value) {
    j[key] = value;
    return j;
  };
  const int layers = text_config["num_hidden_layers"].get<int>();
  auto wider = unet_config["block_out_channels"];
  wider[0] = wider[0].get<int>() * 2;
  const std::vector<Case> cases = {
      {"text_encoder/config.json", with(text_config, "num_hidden_layers", 100000),
       "num_hidden_layers 100000 is beyond p2l's bound of 64"},
      {"text_encoder/config.json", with(text_config, "num_hidden_layers", layers + 1),
       "num_hidden_layers is " + std::to_string(layers + 1) + ", the weights hold " +
           std::to_string(layers)},
      {"text_encoder/config.json",
       with(text_config, "intermediate_size", text_config["intermediate_size"].get<int>() * 4),
       "expects intermediate_size"},
      {"unet/config.json", with(unet_config, "layers_per_block", 1000000),
       "layers_per_block 1000000 is beyond"},
      {"unet/config.json",
       with(unet_config, "layers_per_block", unet_config["layers_per_block"].get<int>() + 1),
       "layers_per_block is"},
      {"unet/config.json", with(unet_config, "block_out_channels", wider),
       "expects block_out_channels[0]"},
      {"vae/config.json",
       with(vae_config, "layers_per_block", vae_config["layers_per_block"].get<int>() + 2),
       "layers_per_block is"},
  };
  for (const auto& c : cases) {
    const auto dir = linked_copy(source, "lying_config");
    replace_json(dir / c.file, c.config);
    const auto start = std::chrono::steady_clock::now();
    const auto message = error_of([&] { model::load_stable_diffusion(dir.string()); });
    EXPECT_NE(message.find(c.expected), std::string::npos) << c.file << ": " << message;
    EXPECT_NE(message.find(c.file), std::string::npos) << message;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 20);
  }
}

// The same for a single file's YAML: its sizes must be the weights' (the lines are the golden
// YAML's own, changed one at a time).
TEST(HostileInput, SingleFileYamlIsCheckedAgainstTheWeights) {
  const fs::path weights = Goldens::get().single_file();
  std::ifstream in(fs::path(Goldens::get().dir()) / "sd_v1_tiny_compvis.yaml");
  const std::string yaml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto changed = [&](const std::string& key, const std::string& value) {
    const auto at = yaml.find(key + ":");
    EXPECT_NE(at, std::string::npos) << key;
    const auto end = yaml.find('\n', at);
    return yaml.substr(0, at) + key + ": " + value + yaml.substr(end);
  };
  struct Case {
    std::string key, value, expected;
  };
  for (const auto& c : std::vector<Case>{
           {"model_channels", "4096", "model_channels × channel_mult is"},
           {"num_res_blocks", "9", "the UNet's num_res_blocks is 9, the weights hold"},
           {"num_hidden_layers", "60", "num_hidden_layers is 60, the weights hold"},
           {"num_res_blocks", "100000", "beyond p2l's bound"}}) {
    const auto dir = scratch() / "yaml";
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::create_symlink(weights, dir / "model.safetensors");
    write_file(dir / "model.yaml", changed(c.key, c.value));
    const auto message =
        error_of([&] { model::load_stable_diffusion((dir / "model.safetensors").string()); });
    EXPECT_NE(message.find(c.expected), std::string::npos) << c.key << ": " << message;
    EXPECT_NE(message.find("model.yaml"), std::string::npos) << message;
  }
}

TEST(HostileInput, DiffusersFolderNeedsItsPipelineIndex) {
  const fs::path source = Goldens::get().diffusers_dir();
  auto dir = linked_copy(source, "no_index");
  fs::remove(dir / "model_index.json");
  EXPECT_NE(error_of([&] { model::load_stable_diffusion(dir.string()); }).find("needs model_index.json"),
            std::string::npos);
  write_file(dir / "model_index.json", "{not json");
  EXPECT_NE(error_of([&] { model::load_stable_diffusion(dir.string()); }).find("not valid JSON"),
            std::string::npos);
  fs::remove(dir / "model_index.json");
  write_file(dir / "model_index.json", "[1, 2]");
  EXPECT_NE(error_of([&] { model::load_stable_diffusion(dir.string()); }).find("_class_name"),
            std::string::npos);
}

// A model without tokenizer/ falls back to the CLIP vocabulary p2l ships; a text encoder with a
// smaller embedding table cannot take its ids ("index out of range in self" at the first prompt).
TEST(HostileInput, TokenizerMustFitTheTextEncoder) {
  const auto dir = linked_copy(kModel, "no_tokenizer");
  fs::remove_all(dir / "tokenizer");
  const auto message = error_of([&] { model::load_stable_diffusion(dir.string()); });
  EXPECT_NE(message.find("give --tokenizer DIR"), std::string::npos) << message;
  model::LoadOptions options;
  options.tokenizer_dir = (kModel / "tokenizer").string();
  EXPECT_NO_THROW(model::load_stable_diffusion(dir.string(), options));
}

TEST(HostileInput, AbsurdFlagsAreOneLine) {
  const std::string model = " -m " + kModel.string() + " ";
  const std::string out = " -o " + (scratch() / "flags.png").string();
  expect_one_line_error(run_p2l("sample" + model + "-p x --steps 1 --cfg-scale nan" + out),
                        "not a finite number: nan");
  expect_one_line_error(run_p2l("sample" + model + "-p x --steps 1 --cfg-scale inf" + out),
                        "not a finite number: inf");
  expect_one_line_error(run_p2l("sample" + model + "-p x --steps 1 --eta nan" + out),
                        "not a finite number");
  expect_one_line_error(run_p2l("sample" + model + "-p x --steps 1 --seed -1" + out),
                        "must not be negative: -1");
  expect_one_line_error(run_p2l("--threads 100000 sample" + model + "-p x --steps 1" + out),
                        "--threads");
  expect_one_line_error(run_p2l("sample" + model + "-p x --steps 10000000000" + out), "--steps");
  expect_one_line_error(run_p2l("sample" + model + "-p x --steps 1 -W 100000 -H 100000" + out),
                        "100000x100000 is beyond p2l's limit of 16384");
  // 100 KiB (the kernel passes one argument of at most 128 KiB).
  expect_one_line_error(run_p2l("sample" + model + "-p " + std::string(100000, 'a') + out),
                        "the prompt is 100000 bytes");
  EXPECT_NE(error_of([] { shipped().tokenizer->encode(std::string(1 << 20, 'a')); })
                .find("the prompt is 1048576 bytes"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(scratch() / "flags.png"));
}

TEST(HostileInput, RunsThatCannotFitAreRefusedBeforeTheyStart) {
  const auto& config = shipped().config;
  // A million 64² samples need at least 2 · 10⁶ · 64² · C₀ floats at the decoder's first layer.
  const int64_t c0 = config.vae.block_out_channels.front();
  EXPECT_EQ(model::decoder_memory_lower_bound(config, 1000000, 64, 64, torch::kFloat),
            2 * int64_t{1000000} * 64 * 64 * c0 * 4);
  EXPECT_NE(error_of([&] {
              model::check_run_fits(config, 1000000, 64, 64, torch::kFloat, torch::kCPU, "restore");
            }).find("restore: 1000000 image(s) of 64x64 need more than"),
            std::string::npos);
  // The bound is far below what a small run really takes: it never refuses one.
  EXPECT_NO_THROW(model::check_run_fits(config, 1, 64, 64, torch::kFloat, torch::kCPU, "sample"));
  EXPECT_NO_THROW(model::check_run_fits(config, 64, 512, 512, torch::kFloat, torch::kCUDA, "x"));

  const auto clean = torch::rand({1, 3, 64, 64}) * 2 - 1;
  const auto files = operators::save_measurement(eval::measure_task(clean, "sr", 0.05, 1),
                                                 (scratch() / "fits").string());
  const auto r = run_p2l("restore -m " + kModel.string() + " --measurement " + files.json +
                         " --method ldps --steps 2 --samples 1000000 -o " +
                         (scratch() / "fits.png").string());
  expect_one_line_error(r, "--samples: Value 1000000 not in range");
}

// A measurement is checked when it is read: its y must be floating point and finite, and so must
// the operator's tensors (before: a bool y was used; a NaN surfaced as a divergence after solving).
TEST(HostileInput, MeasurementValuesAreCheckedOnLoad) {
  const auto clean = torch::rand({1, 3, 64, 64}) * 2 - 1;
  const auto m = eval::measure_task(clean, "motion-blur", 0.05, 3);
  const auto rewrite = [&](const std::string& name, const std::function<void(NamedList&)>& edit) {
    const auto files = operators::save_measurement(m, (scratch() / name).string());
    io::SafeTensorsFile file(files.tensors);
    NamedList tensors;
    for (const auto& info : file.tensors())
      tensors.emplace_back(info.name, file.load(info.name).clone());
    edit(tensors);
    io::save_safetensors(files.tensors, tensors);
    return files.json;
  };
  EXPECT_NO_THROW(operators::load_measurement(rewrite("plain", [](auto&) {})));
  const auto bool_y = rewrite("bool_y", [](NamedList& t) {
    for (auto& [name, tensor] : t)
      if (name == "y") tensor = tensor > 0;
  });
  EXPECT_NE(error_of([&] { operators::load_measurement(bool_y); }).find("not floating point"),
            std::string::npos);
  const auto nan_y = rewrite("nan_y", [](NamedList& t) {
    for (auto& [name, tensor] : t)
      if (name == "y") tensor.view(-1)[7] = NAN;
  });
  EXPECT_NE(error_of([&] { operators::load_measurement(nan_y); }).find("NaN or Inf"),
            std::string::npos);
  const auto inf_kernel = rewrite("inf_kernel", [](NamedList& t) {
    for (auto& [name, tensor] : t)
      if (name != "y") tensor.view(-1)[0] = INFINITY;
  });
  EXPECT_NE(error_of([&] { operators::load_measurement(inf_kernel); }).find("the operator's tensor"),
            std::string::npos);
}

// An output that cannot be written is found before the work, with the reason.
TEST(HostileInput, UnwritableOutputsFailBeforeTheWork) {
  const std::string model = " -m " + kModel.string() + " ";
  auto r = run_p2l("sample" + model + "-p x --steps 3 -o /proc/x.png");
  expect_one_line_error(r, "/proc/x.png: cannot write (");
  EXPECT_EQ(r.err.find("sampling"), std::string::npos) << r.err;
  write_file(scratch() / "a_file", "x");
  r = run_p2l("sample" + model + "-p x --steps 3 -o " + (scratch() / "a_file" / "x.png").string());
  expect_one_line_error(r, "cannot make its folder");
  // A folder that does not exist yet is made.
  r = run_p2l("sample" + model + "-p x --steps 1 -o " + (scratch() / "new" / "x.png").string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(scratch() / "new" / "x.png"));
  const auto clean = torch::rand({1, 3, 64, 64}) * 2 - 1;
  const auto files = operators::save_measurement(eval::measure_task(clean, "sr", 0.05, 1),
                                                 (scratch() / "unwritable").string());
  r = run_p2l("restore" + model + "--measurement " + files.json + " --steps 3 -o /proc/x.png");
  expect_one_line_error(r, "/proc/x.png: cannot write (");
  r = run_p2l("degrade --task sr " + (kModel / "test_images").string() + "/" +
              fs::directory_iterator(kModel / "test_images")->path().filename().string() +
              " -o /proc/x");
  expect_one_line_error(r, "/proc/x.json: cannot write (");
}

}  // namespace
}  // namespace p2l::test
