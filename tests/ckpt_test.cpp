// PyTorch checkpoints (.ckpt/.pt/.bin): every reference case of tests/goldens/ckpt_cases read
// exactly, malicious and broken files refused with one line and without running anything, the
// tiny SD model's .ckpt equal to its .safetensors (tensors, model, `info`, `sample`, `restore`),
// diffusers folders holding .bin files, and `p2l convert`.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zip.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "cli_runner.h"
#include "error_of.h"
#include "goldens.h"
#include "p2l/io/pickle.h"
#include "p2l/io/torch_checkpoint.h"
#include "p2l/io/weight_file.h"

namespace p2l::test {
namespace {

namespace fs = std::filesystem;

std::string cases_dir() { return goldens_dir() + "/ckpt_cases"; }
std::string tiny_ckpt() { return goldens_dir() + "/sd_v1_tiny_compvis.ckpt"; }
std::string tiny_safetensors() { return goldens_dir() + "/sd_v1_tiny_compvis.safetensors"; }

fs::path scratch(const std::string& name) {
  const auto dir =
      fs::path(::testing::TempDir()) / ("p2l_ckpt_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

nlohmann::json expected_cases() {
  std::ifstream in(cases_dir() + "/expected.json");
  return nlohmann::json::parse(in);
}

torch::ScalarType dtype_named(const std::string& name) {
  static const std::map<std::string, torch::ScalarType> kTypes = {
      {"float32", torch::kFloat},  {"float16", torch::kHalf}, {"bfloat16", torch::kBFloat16},
      {"float64", torch::kDouble}, {"int64", torch::kLong},   {"int32", torch::kInt},
      {"int16", torch::kShort},    {"int8", torch::kChar},    {"uint8", torch::kByte},
      {"bool", torch::kBool}};
  return kTypes.at(name);
}

// --- building hostile files: pickle opcodes and zip archives, no Python ---------------------

struct PickleBytes {
  std::string b = "\x80\x02";  // PROTO 2
  PickleBytes& op(char c) {
    b += c;
    return *this;
  }
  PickleBytes& text(const std::string& s) {  // BINUNICODE
    b += 'X';
    const uint32_t n = static_cast<uint32_t>(s.size());
    b.append(reinterpret_cast<const char*>(&n), 4);
    b += s;
    return *this;
  }
  PickleBytes& integer(int32_t v) {  // BININT
    b += 'J';
    b.append(reinterpret_cast<const char*>(&v), 4);
    return *this;
  }
  PickleBytes& global(const std::string& module, const std::string& name) {
    b += 'c' + module + '\n' + name + '\n';
    return *this;
  }
  // _rebuild_tensor_v2(('storage', <type>, key, 'cpu', numel), offset, shape, stride, False,
  // OrderedDict())
  PickleBytes& tensor(const std::string& type, const std::string& key, int32_t numel,
                      int32_t offset, const std::vector<int32_t>& shape,
                      const std::vector<int32_t>& stride) {
    global("torch._utils", "_rebuild_tensor_v2").op('(');
    op('(').text("storage").global("torch", type).text(key).text("cpu").integer(numel).op('t');
    op('Q').integer(offset);
    op('(');
    for (int32_t d : shape) integer(d);
    op('t').op('(');
    for (int32_t s : stride) integer(s);
    op('t').op('\x89').global("collections", "OrderedDict").op(')').op('R');
    return op('t').op('R');
  }
  std::string done() { return b + "."; }
};

// A stored (uncompressed) zip as torch.save writes it.
void write_zip(const fs::path& path, const std::vector<std::pair<std::string, std::string>>& files,
               bool compress = false) {
  int error = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
  ASSERT_NE(z, nullptr);
  for (const auto& [name, data] : files) {
    zip_source_t* src = zip_source_buffer(z, data.data(), data.size(), 0);
    ASSERT_NE(src, nullptr);
    const zip_int64_t i = zip_file_add(z, name.c_str(), src, ZIP_FL_ENC_UTF_8);
    ASSERT_GE(i, 0);
    zip_set_file_compression(z, static_cast<zip_uint64_t>(i),
                             compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
  }
  ASSERT_EQ(zip_close(z), 0) << zip_strerror(z);  // reads the buffers, which are still alive
}

// A flat state dict of float32 tensors, as torch.save({name: tensor}) writes it.
void write_state_dict(const fs::path& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      bool compress = false) {
  PickleBytes p;
  p.global("collections", "OrderedDict").op(')').op('R').op('(');
  std::vector<std::pair<std::string, std::string>> files;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto t = tensors[i].second.to(torch::kFloat).contiguous();
    std::vector<int32_t> shape, stride;
    for (auto d : t.sizes()) shape.push_back(static_cast<int32_t>(d));
    for (auto s : t.strides()) stride.push_back(static_cast<int32_t>(s));
    p.text(tensors[i].first);
    p.tensor("FloatStorage", std::to_string(i), static_cast<int32_t>(t.numel()), 0, shape, stride);
    files.emplace_back("archive/data/" + std::to_string(i),
                       std::string(static_cast<const char*>(t.data_ptr()), t.nbytes()));
  }
  p.op('u');
  files.insert(files.begin(), {"archive/data.pkl", p.done()});
  write_zip(path, files, compress);
}

// The message of opening and reading every tensor of `path`.
std::string read_error(const std::string& path) {
  return error_of([&] {
    io::TorchCheckpoint ckpt(path);
    for (const auto& t : ckpt.tensors()) ckpt.load(t.name);
  });
}

void expect_one_line_refusal(const std::string& message, const std::string& culprit) {
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_NE(message.find(culprit), std::string::npos) << message;
  EXPECT_NE(message, "(no p2l::Error)");
}

// --- the reference cases --------------------------------------------------------------------

TEST(CkptCases, EveryExpectedTensorExactly) {
  const auto expected = expected_cases();
  int cases = 0;
  for (const auto& [file, tensors] : expected.items()) {
    if (file[0] == '_') continue;
    ++cases;
    SCOPED_TRACE(file);
    io::TorchCheckpoint ckpt(cases_dir() + "/" + file);
    EXPECT_EQ(ckpt.legacy(), file == "legacy.ckpt");
    EXPECT_EQ(ckpt.tensors().size(), tensors.size());
    for (const auto& [path, want] : tensors.items()) {
      SCOPED_TRACE(path);
      // expected.json names a lone state dict's tensors without the 'state_dict.' level.
      const std::string name = ckpt.contains(path) ? path : "state_dict." + path;
      ASSERT_TRUE(ckpt.contains(name));
      const auto t = ckpt.load(name);
      EXPECT_EQ(t.scalar_type(), dtype_named(want["dtype"]));
      EXPECT_EQ(t.sizes().vec(), want["shape"].get<std::vector<int64_t>>());
      EXPECT_EQ(t.strides().vec(), want["stride"].get<std::vector<int64_t>>());
      EXPECT_EQ(io::to_torch(ckpt.info(name).dtype), t.scalar_type());
      EXPECT_EQ(ckpt.info(name).shape, t.sizes().vec());
      const auto flat = t.to(torch::kDouble).flatten();
      if (want.contains("first")) {
        const auto first = want["first"].get<std::vector<double>>();
        for (size_t i = 0; i < first.size(); ++i)
          EXPECT_EQ(flat[static_cast<int64_t>(i)].item<double>(), first[i]) << i;
      }
      if (want.contains("sum")) {
        EXPECT_EQ(flat.sum().item<double>(), want["sum"].get<double>());
      }
    }
  }
  EXPECT_GE(cases, 4);
}

TEST(CkptCases, EveryRefusedFileIsOneLineError) {
  const auto expected = expected_cases();  // a loop over expected_cases()["…"] would read freed memory
  for (const auto& file : expected["_refuse"]) {
    SCOPED_TRACE(file.get<std::string>());
    const auto path = cases_dir() + "/" + file.get<std::string>();
    expect_one_line_refusal(read_error(path), path);
  }
  // The malicious ones name the global they would have called.
  expect_one_line_refusal(read_error(cases_dir() + "/malicious_global.ckpt"),
                          "refuses to load: the pickle calls posix.system");
  expect_one_line_refusal(read_error(cases_dir() + "/malicious_reduce.ckpt"),
                          "refuses to load: the pickle calls __builtin__.eval");
}

// Pickles whose payload would create a file: the file never appears, whichever way the call is
// spelled (GLOBAL, STACK_GLOBAL, a global behind an allowed one, the legacy format).
TEST(CkptCases, MaliciousPicklesRunNothing) {
  const auto dir = scratch("malicious");
  const auto witness = dir / "witness";
  const std::string payload = "touch " + witness.string();
  auto call = [&](PickleBytes p) { return p.text(payload).op('\x85').op('R'); };

  PickleBytes direct;
  direct.op('}').text("state_dict").global("posix", "system");
  PickleBytes stacked;  // protocol 4 spelling: module and name from the stack
  stacked.op('}').text("state_dict").text("os").text("system").op('\x93');
  PickleBytes late;  // a harmless tensor first, the call afterwards
  late.op('}')
      .text("w")
      .tensor("FloatStorage", "0", 1, 0, {1}, {1})
      .op('s')
      .text("x")
      .global("builtins", "exec");
  const std::vector<std::pair<std::string, std::string>> pickles = {
      {"posix.system", call(direct).op('s').done()},
      {"os.system", call(stacked).op('s').done()},
      {"builtins.exec", call(late).op('s').done()}};
  for (const auto& [culprit, bytes] : pickles) {
    SCOPED_TRACE(culprit);
    write_zip(dir / "evil.ckpt",
              {{"archive/data.pkl", bytes}, {"archive/data/0", std::string(4, '\0')}});
    expect_one_line_refusal(read_error((dir / "evil.ckpt").string()),
                            "the pickle calls " + culprit);
    // Legacy spelling: the first pickle of the file is the payload.
    std::ofstream((dir / "evil.pt").string(), std::ios::binary) << bytes;
    expect_one_line_refusal(read_error((dir / "evil.pt").string()), "the pickle calls " + culprit);
    // Through the model loader and the CLI as well.
    expect_one_line_refusal(
        error_of([&] { model::load_stable_diffusion((dir / "evil.ckpt").string()); }), culprit);
    expect_one_line_error(run_p2l("info " + (dir / "evil.ckpt").string()), culprit);
    EXPECT_FALSE(fs::exists(witness));
  }
}

// What SD release files carry beside the weights (sd-v1-4.ckpt): Lightning's ModelCheckpoint
// class as a dict key, numpy scalars built from numpy.dtype and _codecs.encode. They are read as
// opaque values; the weights are found as usual.
TEST(CkptCases, LightningExtrasAreOpaque) {
  const auto dir = scratch("lightning");
  PickleBytes p;
  p.op('}').op('(').text("state_dict").global("collections", "OrderedDict").op(')').op('R');
  p.op('(').text("w").tensor("FloatStorage", "0", 2, 0, {2}, {1}).op('u');
  p.text("global_step").global("numpy.core.multiarray", "scalar");
  p.global("numpy", "dtype").text("i8").op('\x89').op('\x88').op('\x87').op('R');
  p.op('(').integer(3).text("<").op('N').op('N').op('N').integer(-1).integer(-1).integer(0);
  p.op('t').op('b');
  p.global("_codecs", "encode").text("\xc3\x90\x07").text("latin1").op('\x86').op('R');
  p.op('\x86').op('R');
  p.text("callbacks")
      .op('}')
      .global("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint");
  p.op('}').text("best_model_score").op('N').op('s').op('s');
  p.op('u');
  const float values[2] = {1.5f, -2.0f};
  write_zip(dir / "sd.ckpt",
            {{"archive/data.pkl", p.done()},
             {"archive/data/0", std::string(reinterpret_cast<const char*>(values), 8)}});
  io::TorchCheckpoint ckpt((dir / "sd.ckpt").string());
  ASSERT_EQ(ckpt.tensors().size(), 1u);
  EXPECT_EQ(ckpt.tensors()[0].name, "state_dict.w");
  const io::WeightFile weights((dir / "sd.ckpt").string());
  EXPECT_TRUE(torch::equal(weights.load("w"), torch::tensor({1.5f, -2.0f})));
}

// The same archive with deflated entries (torch.save stores them; zip tools may not): the same
// tensors, views with offsets included.
TEST(CkptCases, DeflatedArchivesReadTheSame) {
  const auto dir = scratch("deflated");
  const auto source = cases_dir() + "/views.ckpt";
  int error = 0;
  zip_t* z = zip_open(source.c_str(), ZIP_RDONLY, &error);
  ASSERT_NE(z, nullptr);
  std::vector<std::pair<std::string, std::string>> files;
  for (zip_int64_t i = 0; i < zip_get_num_entries(z, 0); ++i) {
    zip_stat_t st;
    ASSERT_EQ(zip_stat_index(z, static_cast<zip_uint64_t>(i), 0, &st), 0);
    std::string data(st.size, '\0');
    zip_file_t* f = zip_fopen_index(z, static_cast<zip_uint64_t>(i), 0);
    ASSERT_EQ(zip_fread(f, data.data(), st.size), static_cast<zip_int64_t>(st.size));
    zip_fclose(f);
    files.emplace_back(st.name, data);
  }
  zip_discard(z);
  write_zip(dir / "deflated.ckpt", files, /*compress=*/true);
  const io::TorchCheckpoint stored(source), deflated((dir / "deflated.ckpt").string());
  ASSERT_EQ(deflated.tensors().size(), stored.tensors().size());
  for (const auto& t : stored.tensors()) {
    const auto a = stored.load(t.name), b = deflated.load(t.name);
    EXPECT_EQ(a.strides(), b.strides()) << t.name;
    EXPECT_TRUE(torch::equal(a, b)) << t.name;
  }
}

// --- hostile inputs: each a one-line p2l::Error, before any large allocation ------------------

TEST(CkptHostile, NestingBombs) {
  const auto dir = scratch("nesting");
  PickleBytes lists;  // 100000 lists, each appended into the one before
  for (int i = 0; i < 100000; ++i) lists.op(']');
  for (int i = 0; i < 99999; ++i) lists.op('a');
  PickleBytes marks;  // 1000000 open MARKs
  marks.b += std::string(1000000, '(');
  PickleBytes self;  // a list appended into itself, again and again
  self.op(']').op('q').b += '\0';
  for (int i = 0; i < 1000; ++i) self.op('h').b += std::string("\0a", 2);
  for (auto* p : {&lists, &marks, &self}) {
    write_zip(dir / "bomb.ckpt", {{"archive/data.pkl", p->done()}});
    expect_one_line_refusal(read_error((dir / "bomb.ckpt").string()), "deeper than");
  }
}

TEST(CkptHostile, StorageLargerThanItsEntry) {
  const auto dir = scratch("huge");
  for (int32_t numel : {5, 1 << 30}) {  // 16 bytes stored
    PickleBytes p;
    p.op('}').text("w").tensor("FloatStorage", "0", numel, 0, {4}, {1}).op('s');
    write_zip(dir / "huge.ckpt",
              {{"archive/data.pkl", p.done()}, {"archive/data/0", std::string(16, '\0')}});
    expect_one_line_refusal(read_error((dir / "huge.ckpt").string()), "its entry holds 16 bytes");
  }
  // No entry at all for a storage the pickle names.
  PickleBytes p;
  p.op('}').text("w").tensor("FloatStorage", "0", 4, 0, {4}, {1}).op('s');
  write_zip(dir / "missing.ckpt", {{"archive/data.pkl", p.done()}});
  expect_one_line_refusal(read_error((dir / "missing.ckpt").string()), "storage '0' is missing");
}

TEST(CkptHostile, ViewsBeyondTheirStorage) {
  const auto dir = scratch("views");
  struct Case {
    int32_t offset;
    std::vector<int32_t> shape, stride;
  };
  const std::vector<Case> cases = {
      {0, {3, 3}, {3, 1}},                    // 9 elements of 4
      {4, {1}, {1}},                          // offset at the end
      {0, {2, 2}, {1, 3}},                    // stride reaches element 4
      {0, {65536, 65536}, {65536, 1}},        // 2^32 elements
      {0, {2, 2147483647}, {2147483647, 1}},  // extent overflows nothing but is far too large
  };
  for (const auto& c : cases) {
    PickleBytes p;
    p.op('}').text("w").tensor("FloatStorage", "0", 4, c.offset, c.shape, c.stride).op('s');
    write_zip(dir / "view.ckpt",
              {{"archive/data.pkl", p.done()}, {"archive/data/0", std::string(16, '\0')}});
    expect_one_line_refusal(read_error((dir / "view.ckpt").string()), "reaches beyond storage '0'");
  }
  // Sizes whose product overflows int64.
  PickleBytes p;
  p.op('}')
      .text("w")
      .tensor("FloatStorage", "0", 4, 0, {65536, 65536, 65536, 65536}, {0, 0, 0, 0})
      .op('s');
  write_zip(dir / "view.ckpt",
            {{"archive/data.pkl", p.done()}, {"archive/data/0", std::string(16, '\0')}});
  expect_one_line_refusal(read_error((dir / "view.ckpt").string()), "reaches beyond storage '0'");
}

TEST(CkptHostile, TruncatedArchives) {
  const auto dir = scratch("truncated");
  std::ifstream in(cases_dir() + "/views.ckpt", std::ios::binary);
  const std::string whole((std::istreambuf_iterator<char>(in)), {});
  for (size_t keep = 0; keep < whole.size(); keep += 37) {
    std::ofstream(dir / "cut.ckpt", std::ios::binary | std::ios::trunc) << whole.substr(0, keep);
    expect_one_line_refusal(read_error((dir / "cut.ckpt").string()), (dir / "cut.ckpt").string());
  }
}

TEST(CkptHostile, BadOpcodesAndMalformedPickles) {
  const auto dir = scratch("opcodes");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {std::string("\x80\x02\xff.", 4), "unsupported opcode 0xff"},
      {"\x80\x02}ccollections\nOrderedDict\ni(.", "unsupported opcode 0x69"},  // INST
      {"\x80\x02}", "without STOP"},
      {"\x80\x02h\x05.", "memo entry 5 is unset"},
      {"\x80\x02s.", "stack underflow"},
      {"\x80\x02X\xff\xff\xff\x7f", "a string of 2147483647 bytes"},
      {std::string("\x80\x02X\x10\x00\x00\x00"
                   "ab",
                   10),
       "runs past the end"},
      {"\x80\x02"
       "ctorch\nFloatStorage\n)R.",
       "the pickle calls torch.FloatStorage"},
  };
  for (const auto& [bytes, culprit] : cases) {
    write_zip(dir / "bad.ckpt", {{"archive/data.pkl", bytes}});
    expect_one_line_refusal(read_error((dir / "bad.ckpt").string()), culprit);
  }
  // A name with a line break still gives one line.
  write_zip(dir / "bad.ckpt",
            {{"archive/data.pkl", PickleBytes().text("os\nx").text("system").op('\x93').done()}});
  expect_one_line_refusal(read_error((dir / "bad.ckpt").string()), "the pickle calls os?x.system");
}

// Random corruption of a real pickle: read or refused with a p2l::Error, never anything else.
TEST(CkptHostile, CorruptedPicklesNeverCrash) {
  int error = 0;
  zip_t* z = zip_open((cases_dir() + "/dtypes.ckpt").c_str(), ZIP_RDONLY, &error);
  ASSERT_NE(z, nullptr);
  zip_stat_t st;
  ASSERT_EQ(zip_stat(z, "dtypes/data.pkl", 0, &st), 0);
  std::string pickle(st.size, '\0');
  zip_file_t* f = zip_fopen(z, "dtypes/data.pkl", 0);
  ASSERT_EQ(zip_fread(f, pickle.data(), st.size), static_cast<zip_int64_t>(st.size));
  zip_fclose(f);
  zip_discard(z);
  std::mt19937 rng(7);
  int refused = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bytes = pickle;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    try {
      const auto p = io::pickle::read(bytes.data(), bytes.size(), "fuzz");
      io::pickle::named_tensors(p, "fuzz");
    } catch (const Error& e) {
      ++refused;
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
  }
  EXPECT_GT(refused, 100);
}

// --- the tiny SD model as .ckpt -------------------------------------------------------------

TEST(CkptModel, TensorsBitIdenticalToTheSafetensorsFile) {
  const io::WeightFile ckpt(tiny_ckpt());
  const io::SafeTensorsFile reference(tiny_safetensors());
  for (const auto& info : reference.tensors()) {
    SCOPED_TRACE(info.name);
    ASSERT_TRUE(ckpt.contains(info.name));
    EXPECT_EQ(ckpt.info(info.name).dtype, info.dtype);
    EXPECT_EQ(ckpt.info(info.name).shape, info.shape);
    EXPECT_TRUE(torch::equal(ckpt.load(info.name), reference.load(info.name)));
  }
  // Beside them only the EMA copies, which the loader ignores.
  for (const auto& info : ckpt.tensors()) {
    if (!reference.contains(info.name)) {
      EXPECT_EQ(info.name.rfind("model_ema.", 0), 0u) << info.name;
    }
  }
}

void expect_same_model(model::StableDiffusion& a, model::StableDiffusion& b) {
  EXPECT_EQ(a.config.unet.to_json(), b.config.unet.to_json());
  EXPECT_EQ(a.config.vae.to_json(), b.config.vae.to_json());
  EXPECT_EQ(a.config.text.to_json(), b.config.text.to_json());
  for (auto [x, y] : std::vector<std::pair<torch::nn::Module*, torch::nn::Module*>>{
           {a.unet.ptr().get(), b.unet.ptr().get()},
           {a.vae.ptr().get(), b.vae.ptr().get()},
           {a.text_encoder.ptr().get(), b.text_encoder.ptr().get()}}) {
    auto py = y->named_parameters();
    for (const auto& item : x->named_parameters()) {
      ASSERT_TRUE(py.contains(item.key())) << item.key();
      EXPECT_TRUE(torch::equal(item.value(), py[item.key()])) << item.key();
    }
  }
}

TEST(CkptModel, LoadsTheSameModelAsTheSafetensorsFile) {
  model::LoadOptions options;
  options.tokenizer_dir = Goldens::get().diffusers_dir() + "/tokenizer";
  auto from_ckpt = model::load_stable_diffusion(tiny_ckpt(), options);
  auto reference = model::load_stable_diffusion(tiny_safetensors(), options);
  EXPECT_EQ(from_ckpt.layout, model::Layout::SingleFile);
  EXPECT_EQ(from_ckpt.storage_dtype, "F32");
  expect_same_model(from_ckpt, reference);

  const auto a = model::describe_model(tiny_ckpt()), b = model::describe_model(tiny_safetensors());
  EXPECT_EQ(a.unet_parameters, b.unet_parameters);
  EXPECT_EQ(a.vae_parameters, b.vae_parameters);
  EXPECT_EQ(a.text_parameters, b.text_parameters);
  EXPECT_EQ(a.storage_dtype, b.storage_dtype);
  EXPECT_EQ(a.config.unet.to_json(), b.config.unet.to_json());
}

// A diffusers folder whose components are PyTorch .bin files (older diffusers/transformers
// folders): the same model as the safetensors folder.
TEST(CkptModel, DiffusersFolderWithBinFiles) {
  const auto dir = scratch("bin_folder") / "model";
  fs::copy(Goldens::get().diffusers_dir(), dir, fs::copy_options::recursive);
  for (const char* part : {"unet/diffusion_pytorch_model", "vae/diffusion_pytorch_model",
                           "text_encoder/pytorch_model"}) {
    const std::string st = (dir / part).string();
    const std::string from = fs::exists(st + ".safetensors")
                                 ? st + ".safetensors"
                                 : (dir / "text_encoder/model.safetensors").string();
    auto tensors = io::SafeTensorsFile(from).load_all();
    fs::remove(from);
    const std::vector<std::pair<std::string, torch::Tensor>> list(tensors.begin(), tensors.end());
    write_state_dict(st + ".bin", list, /*compress=*/part[0] == 'v');
  }
  auto from_bin = model::load_stable_diffusion(dir.string());
  auto reference = model::load_stable_diffusion(Goldens::get().diffusers_dir());
  expect_same_model(from_bin, reference);
  EXPECT_EQ(model::describe_model(dir.string()).unet_parameters,
            model::describe_model(Goldens::get().diffusers_dir()).unet_parameters);
}

// --- the command line -----------------------------------------------------------------------

TEST(CkptCli, InfoOnTheCkptEqualsTheSafetensorsFile) {
  auto a = run_p2l("info --json " + tiny_ckpt());
  auto b = run_p2l("info --json " + tiny_safetensors());
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  auto ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out);
  ja.erase("source");
  jb.erase("source");
  EXPECT_EQ(ja, jb);
}

TEST(CkptCli, SampleAndRestoreOnTheCkptAreBitIdentical) {
  const auto dir = scratch("cli_sample");
  const std::string tokenizer = " --tokenizer " + Goldens::get().diffusers_dir() + "/tokenizer";
  for (const auto& [name, model] :
       {std::pair<std::string, std::string>{"ckpt", tiny_ckpt()}, {"st", tiny_safetensors()}}) {
    auto r = run_p2l("sample -m " + model + tokenizer +
                     " -p \"a photo of a cat\" --steps 2 -W 256 -H 256 " +
                     "--seed 3 --threads 1 -q -o " + (dir / (name + ".png")).string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  EXPECT_EQ(slurp(dir / "ckpt.png"), slurp(dir / "st.png"));
  EXPECT_FALSE(slurp(dir / "ckpt.png").empty());

  auto r = run_p2l("degrade --task sr --noise 0.05 --seed 2 " + (dir / "st.png").string() + " -o " +
                   (dir / "meas").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const auto& [name, model] :
       {std::pair<std::string, std::string>{"ckpt", tiny_ckpt()}, {"st", tiny_safetensors()}}) {
    r = run_p2l("restore -m " + model + tokenizer + " --measurement " +
                (dir / "meas.json").string() +
                " --method p2l --steps 2 --seed 3 --prompt \"\" --threads 1 -q -o " +
                (dir / ("restored_" + name + ".png")).string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  EXPECT_EQ(slurp(dir / "restored_ckpt.png"), slurp(dir / "restored_st.png"));
  EXPECT_FALSE(slurp(dir / "restored_ckpt.png").empty());
}

TEST(CkptCli, ConvertRoundTrips) {
  const auto dir = scratch("cli_convert");
  // .ckpt → one .safetensors: the reference file's tensors (the 8 VAE attention biases that file
  // stores as [C, 1, 1] come out as [C], the shape released checkpoints use).
  auto r = run_p2l("convert " + tiny_ckpt() + " " + (dir / "tiny.safetensors").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("wrote"), std::string::npos) << r.out;
  const io::SafeTensorsFile ours((dir / "tiny.safetensors").string());
  const io::SafeTensorsFile reference(tiny_safetensors());
  EXPECT_EQ(ours.tensors().size(), reference.tensors().size());
  EXPECT_EQ(ours.metadata().at("format"), "pt");
  for (const auto& info : reference.tensors()) {
    SCOPED_TRACE(info.name);
    ASSERT_TRUE(ours.contains(info.name));
    const auto want = reference.load(info.name), got = ours.load(info.name);
    EXPECT_EQ(got.numel(), want.numel());
    EXPECT_TRUE(torch::equal(got.flatten(), want.flatten()));
    if (info.name.find(".attn_1.") == std::string::npos) {
      EXPECT_EQ(got.sizes(), want.sizes());
    }
  }

  // .ckpt → diffusers folder: loads as the same model.
  r = run_p2l("convert " + tiny_ckpt() + " -o " + (dir / "folder").string() + "/");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(model::detect_layout((dir / "folder").string()), model::Layout::Diffusers);
  auto folder = model::load_stable_diffusion((dir / "folder").string());
  auto reference_model = model::load_stable_diffusion(tiny_safetensors());
  expect_same_model(folder, reference_model);

  // --half: float16 storage, the values rounded once.
  r = run_p2l("convert " + tiny_ckpt() + " " + (dir / "half.safetensors").string() + " --half");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const io::SafeTensorsFile half((dir / "half.safetensors").string());
  for (const auto& info : half.tensors()) EXPECT_EQ(info.dtype, io::DType::F16) << info.name;
  const auto name = reference.tensors().front().name;
  EXPECT_TRUE(
      torch::equal(half.load(name).flatten(), reference.load(name).to(torch::kHalf).flatten()));

  // Refusals: one line.
  expect_one_line_error(run_p2l("convert " + tiny_ckpt() + " " + (dir / "out.ckpt").string()),
                        "writes a .safetensors file or a diffusers folder");
  expect_one_line_error(run_p2l("convert " + cases_dir() + "/malicious_reduce.ckpt " +
                                (dir / "x.safetensors").string()),
                        "__builtin__.eval");
}

}  // namespace
}  // namespace p2l::test
