#include "p2l/io/safetensors.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>

#include "goldens.h"
#include "p2l/error.h"

namespace p2l::io {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, so that tests never see each other's files.
class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           ("p2l_safetensors_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  // Raw bytes: u64 little-endian length (the JSON's own unless given), the JSON, the data.
  std::string write_raw(const std::string& json, const std::string& data = "",
                        int64_t length = -1) const {
    const std::string path = file("raw.safetensors");
    uint64_t n = length < 0 ? json.size() : static_cast<uint64_t>(length);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(&n), 8);  // the host is little-endian
    out << json << data;
    out.close();
    EXPECT_TRUE(out.good());
    return path;
  }

  // Opening `path` must throw a p2l::Error whose message contains every one of `words`.
  static void expect_error(const std::string& path, const std::vector<std::string>& words) {
    try {
      SafeTensorsFile f(path);
      ADD_FAILURE() << "no error for " << path;
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(path), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
      for (const auto& word : words) {
        EXPECT_NE(message.find(word), std::string::npos) << "'" << word << "' not in: " << message;
      }
    }
  }

  fs::path dir_;
};

bool same_bytes(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  torch::Tensor ca = a.contiguous(), cb = b.contiguous();
  return ca.nbytes() == cb.nbytes() &&
         (ca.nbytes() == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0);
}

TEST_F(SafetensorsTest, RoundTripEveryDtype) {
  torch::manual_seed(0);
  torch::Tensor f32 = torch::randn({3, 5});
  f32[0][0] = std::numeric_limits<float>::quiet_NaN();
  f32[0][1] = -0.0f;
  f32[0][2] = std::numeric_limits<float>::infinity();
  const std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"f32", f32},
      {"f16", torch::randn({4, 2}).to(torch::kHalf)},
      {"bf16", torch::randn({7}).to(torch::kBFloat16)},
      {"f64", torch::randn({2, 2, 3}, torch::kFloat64)},
      {"i64", torch::randint(-(int64_t{1} << 62), int64_t{1} << 62, {6}, torch::kInt64)},
      {"i32", torch::randint(-100000, 100000, {3, 1}, torch::kInt32)},
      {"u8", torch::randint(0, 256, {9}, torch::kByte)},
      {"bool", torch::rand({2, 3}) > 0.5},
      {"scalar", torch::tensor(2.5)},                                     // shape []
      {"empty", torch::empty({0, 3}, torch::kFloat32)},                   // zero-size
      {"empty_i64", torch::empty({2, 0}, torch::kInt64)},                 // zero-size, same offset
      {"transposed", torch::arange(12, torch::kInt32).view({3, 4}).t()},  // non-contiguous
  };
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "ünïcode"}};
  const std::string path = file("all.safetensors");
  save_safetensors(path, tensors, metadata);
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  SafeTensorsFile f(path);
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.metadata(), metadata);
  ASSERT_EQ(f.tensors().size(), tensors.size());
  uint64_t expected_begin = 0;
  for (const auto& info : f.tensors()) {  // offset order, contiguous
    EXPECT_EQ(info.begin, expected_begin) << info.name;
    expected_begin = info.end;
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, tensor] = tensors[i];
    ASSERT_TRUE(f.contains(name)) << name;
    EXPECT_EQ(to_torch(f.info(name).dtype), tensor.scalar_type()) << name;
    EXPECT_EQ(f.info(name).shape, tensor.sizes().vec()) << name;
    torch::Tensor loaded = f.load(name);
    EXPECT_TRUE(loaded.is_contiguous()) << name;
    EXPECT_TRUE(same_bytes(loaded, tensor)) << name;
  }
  EXPECT_EQ(f.load("scalar").dim(), 0);
  EXPECT_EQ(f.load("bool").scalar_type(), torch::kBool);
  EXPECT_EQ(f.load("u8").scalar_type(), torch::kByte);
  EXPECT_EQ(f.load("bf16").scalar_type(), torch::kBFloat16);
  EXPECT_EQ(f.load("f16").scalar_type(), torch::kHalf);

  auto all = f.load_all();
  ASSERT_EQ(all.size(), tensors.size());
  for (const auto& [name, tensor] : tensors) EXPECT_TRUE(same_bytes(all.at(name), tensor)) << name;

  // The loaded tensor owns its memory: the file can go away.
  torch::Tensor f32_loaded = f.load("f32");
  fs::remove(path);
  EXPECT_TRUE(same_bytes(f32_loaded, f32));
}

TEST_F(SafetensorsTest, WriterProducesStandardLayout) {
  const std::string path = file("layout.safetensors");
  save_safetensors(path, {{"b", torch::ones({3})}, {"a", torch::zeros({2}, torch::kInt64)}},
                   {{"k", "v"}});
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);  // padded so the data is 8-byte aligned
  ASSERT_EQ(bytes.size(), 8 + n + 3 * 4 + 2 * 8);
  const auto header = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["__metadata__"]["k"], "v");
  EXPECT_EQ(header["__metadata__"]["format"], "pt");  // as the Hugging Face writers do
  EXPECT_EQ(header["b"]["dtype"], "F32");
  EXPECT_EQ(header["b"]["data_offsets"], nlohmann::json({0, 12}));  // given order, not sorted
  EXPECT_EQ(header["a"]["dtype"], "I64");
  EXPECT_EQ(header["a"]["shape"], nlohmann::json({2}));
  EXPECT_EQ(header["a"]["data_offsets"], nlohmann::json({12, 28}));
  SafeTensorsFile f(path);
  EXPECT_EQ(f.tensors()[0].name, "b");
  EXPECT_EQ(f.tensors()[1].name, "a");
}

TEST_F(SafetensorsTest, ReadsHandWrittenFileWithPaddingAndAnyKeyOrder) {
  const float value = 1.5f;
  const std::string data(reinterpret_cast<const char*>(&value), 4);
  const std::string path = write_raw(
      "{\"x\": {\"data_offsets\": [0, 4], \"shape\": [], \"dtype\": \"F32\"}, "
      "\"e\": {\"shape\": [0], \"dtype\": \"U8\", \"data_offsets\": [4, 4]}}   \n  ",
      data);
  SafeTensorsFile f(path);
  EXPECT_TRUE(f.metadata().empty());
  EXPECT_EQ(f.load("x").item<float>(), value);
  EXPECT_EQ(f.load("e").numel(), 0);
  EXPECT_FALSE(f.contains("y"));
  EXPECT_THROW(f.info("y"), Error);
  EXPECT_THROW(f.load("y"), Error);
}

TEST_F(SafetensorsTest, EmptyFileOfTensorsIsValid) {
  SafeTensorsFile f(write_raw("{}"));
  EXPECT_TRUE(f.tensors().empty());
  const std::string path = file("none.safetensors");
  save_safetensors(path, {});
  EXPECT_TRUE(SafeTensorsFile(path).tensors().empty());
}

TEST_F(SafetensorsTest, MoveKeepsTheFileUsable) {
  const std::string path = file("move.safetensors");
  save_safetensors(path, {{"t", torch::arange(4, torch::kInt32)}});
  SafeTensorsFile a(path);
  SafeTensorsFile b(std::move(a));
  EXPECT_TRUE(same_bytes(b.load("t"), torch::arange(4, torch::kInt32)));
  SafeTensorsFile c(write_raw("{}"));
  c = std::move(b);
  EXPECT_TRUE(c.contains("t"));
}

TEST_F(SafetensorsTest, DtypeNamesRoundTrip) {
  for (DType d : {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I64, DType::I32,
                  DType::U8, DType::BOOL}) {
    EXPECT_EQ(dtype_from_name(dtype_name(d)), d);
    EXPECT_EQ(from_torch(to_torch(d)), d);
    EXPECT_EQ(static_cast<int64_t>(dtype_size(d)), c10::elementSize(to_torch(d)));
  }
  EXPECT_THROW(dtype_from_name("F8_E4M3"), Error);
  EXPECT_THROW(from_torch(torch::kComplexFloat), Error);
}

// --- Writer errors -------------------------------------------------------------------------------

TEST_F(SafetensorsTest, WriterRejectsDuplicateNames) {
  const std::string path = file("dup.safetensors");
  try {
    save_safetensors(path, {{"a", torch::ones({1})}, {"a", torch::ones({1})}});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("duplicate"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST_F(SafetensorsTest, WriterRejectsUnsupportedDtypeAndReservedName) {
  const std::string path = file("bad.safetensors");
  try {
    save_safetensors(path, {{"c", torch::ones({2}, torch::kComplexFloat)}});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unsupported dtype"), std::string::npos) << e.what();
  }
  EXPECT_THROW(save_safetensors(path, {{"__metadata__", torch::ones({1})}}), Error);
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(SafetensorsTest, WriterReportsIoFailure) {
  const std::string path = file("no_such_dir/x.safetensors");
  try {
    save_safetensors(path, {{"a", torch::ones({1})}});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_dir"), std::string::npos) << e.what();
  }
}

// --- Reader errors: one malformed file each ------------------------------------------------------

constexpr const char* kOneF32 = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
const std::string kEightBytes(8, '\x01');

TEST_F(SafetensorsTest, RejectsFileShorterThan8Bytes) {
  const std::string path = file("short.safetensors");
  std::ofstream(path, std::ios::binary) << "abcde";
  expect_error(path, {"truncated"});
}

TEST_F(SafetensorsTest, RejectsMissingFile) {
  expect_error(file("does_not_exist.safetensors"), {"cannot open"});
}

TEST_F(SafetensorsTest, RejectsHeaderLengthBeyondFile) {
  expect_error(write_raw(kOneF32, kEightBytes, 1000), {"header length 1000", "beyond"});
}

TEST_F(SafetensorsTest, RejectsHeaderLengthOver100MB) {
  expect_error(write_raw(kOneF32, kEightBytes, 100'000'001), {"100000000", "limit"});
}

TEST_F(SafetensorsTest, RejectsMalformedJson) {
  expect_error(write_raw(R"({"t":{"dtype":"F32","shape":[2],)", kEightBytes), {"malformed JSON"});
}

TEST_F(SafetensorsTest, RejectsHeaderThatIsNotAnObject) {
  expect_error(write_raw("[1, 2]"), {"not an object"});
}

TEST_F(SafetensorsTest, RejectsEntryMissingDtype) {
  expect_error(write_raw(R"({"t":{"shape":[2],"data_offsets":[0,8]}})", kEightBytes),
               {"'t'", "missing", "dtype"});
}

TEST_F(SafetensorsTest, RejectsEntryMissingShape) {
  expect_error(write_raw(R"({"t":{"dtype":"F32","data_offsets":[0,8]}})", kEightBytes),
               {"'t'", "missing", "shape"});
}

TEST_F(SafetensorsTest, RejectsEntryMissingDataOffsets) {
  expect_error(write_raw(R"({"t":{"dtype":"F32","shape":[2]}})", kEightBytes),
               {"'t'", "missing", "data_offsets"});
}

TEST_F(SafetensorsTest, RejectsEntryWithExtraKey) {
  expect_error(
      write_raw(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", kEightBytes),
      {"'t'", "unexpected key"});
}

TEST_F(SafetensorsTest, RejectsUnknownDtype) {
  expect_error(write_raw(R"({"t":{"dtype":"F8","shape":[8],"data_offsets":[0,8]}})", kEightBytes),
               {"'t'", "unknown dtype", "F8"});
}

TEST_F(SafetensorsTest, RejectsNegativeOrFractionalShape) {
  expect_error(write_raw(R"({"t":{"dtype":"U8","shape":[-8],"data_offsets":[0,8]}})", kEightBytes),
               {"'t'", "non-negative integer"});
  expect_error(write_raw(R"({"t":{"dtype":"U8","shape":[8.0],"data_offsets":[0,8]}})", kEightBytes),
               {"'t'", "non-negative integer"});
}

TEST_F(SafetensorsTest, RejectsBadDataOffsets) {
  expect_error(write_raw(R"({"t":{"dtype":"U8","shape":[8],"data_offsets":[0]}})", kEightBytes),
               {"'t'", "data_offsets"});
  expect_error(write_raw(R"({"t":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}})", kEightBytes),
               {"'t'", "begin > end"});
}

TEST_F(SafetensorsTest, RejectsShapeSizeMismatch) {
  expect_error(write_raw(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", kEightBytes),
               {"'t'", "mismatch", "12", "8"});
}

TEST_F(SafetensorsTest, RejectsOverlappingOffsets) {
  expect_error(write_raw(R"({"a":{"dtype":"U8","shape":[6],"data_offsets":[0,6]},)"
                         R"("b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
                         kEightBytes),
               {"overlapping", "'a'", "'b'"});
}

TEST_F(SafetensorsTest, RejectsOutOfRangeOffsets) {
  expect_error(write_raw(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}})",
                         kEightBytes),
               {"'b'", "out of range"});
}

TEST_F(SafetensorsTest, RejectsGapBetweenTensors) {
  expect_error(write_raw(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                         R"("b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
                         kEightBytes),
               {"non-contiguous", "gap", "'b'"});
}

TEST_F(SafetensorsTest, RejectsGapBeforeFirstAndAfterLastTensor) {
  expect_error(write_raw(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})", kEightBytes),
               {"non-contiguous", "gap"});
  expect_error(write_raw(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", kEightBytes),
               {"non-contiguous", "gap"});
}

TEST_F(SafetensorsTest, RejectsDuplicateNames) {
  expect_error(write_raw(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                         R"("a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
                         kEightBytes),
               {"duplicate", "'a'"});
}

TEST_F(SafetensorsTest, RejectsNonStringMetadataValue) {
  expect_error(write_raw(R"({"__metadata__":{"format":"pt","epoch":3},)"
                         R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                         kEightBytes),
               {"__metadata__", "epoch", "not a string"});
}

TEST_F(SafetensorsTest, RejectsDataTruncatedAfterWriting) {
  const std::string path = file("cut.safetensors");
  save_safetensors(path, {{"a", torch::ones({4})}, {"b", torch::ones({3, 3})}});
  ASSERT_NO_THROW(SafeTensorsFile{path});
  fs::resize_file(path, fs::file_size(path) - 5);
  expect_error(path, {"'b'", "out of range", "truncated"});
}

// --- The project's goldens -----------------------------------------------------------------------

TEST_F(SafetensorsTest, LoadsGoldens) {
  const fs::path path = fs::path(test::goldens_dir()) / "goldens.safetensors";
  ASSERT_TRUE(fs::exists(path)) << "no goldens at " << path;
  SafeTensorsFile f(path.string());
  ASSERT_FALSE(f.tensors().empty());
  for (const auto& info : f.tensors()) {
    torch::Tensor t = f.load(info.name);
    EXPECT_EQ(t.sizes().vec(), info.shape) << info.name;
    EXPECT_EQ(static_cast<uint64_t>(t.nbytes()), info.end - info.begin) << info.name;
  }
  ASSERT_TRUE(f.contains("tokens.input_ids"));
  torch::Tensor ids = f.load("tokens.input_ids");
  EXPECT_EQ(ids.scalar_type(), torch::kInt64);
  EXPECT_EQ(ids.dim(), 2);
  EXPECT_EQ(ids.sizes().vec(), f.info("tokens.input_ids").shape);
}

}  // namespace
}  // namespace p2l::io
