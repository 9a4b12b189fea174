// ClipTokenizer against the golden token ids (CLIPTokenizer with ftfy, transformers 4.33) and the
// CLIP cleaning conventions. Everything about the goldens is read from the golden files.
#include "p2l/model/tokenizer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "goldens.h"
#include "p2l/error.h"
#include "p2l/io/safetensors.h"

namespace p2l::model {
namespace {

namespace fs = std::filesystem;

using test::goldens_dir;

std::string tokenizer_dir() { return goldens_dir() + "/diffusers/tokenizer"; }

// Runs `fn`, expects a p2l::Error whose message contains `needle`.
template <typename Fn>
void expect_error_naming(Fn fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no p2l::Error thrown (expected one naming " << needle << ")";
  } catch (const p2l::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message '" << e.what() << "' does not name " << needle;
  }
}

// A scratch folder for defective tokenizer files, removed afterwards.
class ScratchDir {
 public:
  ScratchDir() {
    path_ =
        fs::temp_directory_path() /
        ("p2l_tokenizer_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string write(const std::string& name, const std::string& content) const {
    const fs::path p = path_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }

 private:
  fs::path path_;
};

class ClipTokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (fs::exists(tokenizer_dir() + "/vocab.json")) {
      tokenizer_ = std::make_unique<ClipTokenizer>(ClipTokenizer::from_directory(tokenizer_dir()));
    }
  }
  static void TearDownTestSuite() { tokenizer_.reset(); }

  void SetUp() override {
    if (!tokenizer_) GTEST_FAIL() << "no tokenizer files under " << tokenizer_dir();
  }

  const ClipTokenizer& tok() const { return *tokenizer_; }

  static std::unique_ptr<ClipTokenizer> tokenizer_;
};

std::unique_ptr<ClipTokenizer> ClipTokenizerTest::tokenizer_;

TEST_F(ClipTokenizerTest, SpecialTokenIdsComeFromVocab) {
  EXPECT_EQ(tok().vocab_size(), 49408u);
  EXPECT_EQ(tok().bos_id(), ClipTokenizer::kDefaultBos);
  EXPECT_EQ(tok().eos_id(), ClipTokenizer::kDefaultEos);
  EXPECT_EQ(tok().encode("<|startoftext|>"), std::vector<int64_t>{tok().bos_id()});
  EXPECT_EQ(tok().encode("a <|endoftext|>"),
            (std::vector<int64_t>{tok().encode("a")[0], tok().eos_id()}));
}

TEST_F(ClipTokenizerTest, MatchesGoldenIds) {
  const std::string json_path = goldens_dir() + "/goldens.json";
  const std::string st_path = goldens_dir() + "/goldens.safetensors";
  ASSERT_TRUE(fs::exists(json_path) && fs::exists(st_path)) << "no goldens in " << goldens_dir();

  std::ifstream in(json_path);
  const nlohmann::json goldens = nlohmann::json::parse(in);
  const auto prompts = goldens.at("prompts").get<std::vector<std::string>>();

  io::SafeTensorsFile file(st_path);
  const torch::Tensor ids = file.load("tokens.input_ids");
  const torch::Tensor lengths = file.load("tokens.lengths");
  ASSERT_EQ(ids.scalar_type(), torch::kInt64);
  ASSERT_EQ(lengths.scalar_type(), torch::kInt64);
  ASSERT_EQ(ids.dim(), 2);
  ASSERT_EQ(ids.size(0), static_cast<int64_t>(prompts.size()));
  ASSERT_EQ(lengths.sizes(), torch::IntArrayRef({ids.size(0)}));
  const auto meta_shape = goldens.at("tensors").at("tokens.input_ids").at("shape");
  EXPECT_EQ(meta_shape.get<std::vector<int64_t>>(), ids.sizes().vec());
  const int max_length = static_cast<int>(ids.size(1));

  for (size_t i = 0; i < prompts.size(); ++i) {
    SCOPED_TRACE("prompt " + std::to_string(i) + ": '" + prompts[i] + "'");
    const torch::Tensor want = ids[static_cast<int64_t>(i)].contiguous();
    const std::vector<int64_t> want_row(want.data_ptr<int64_t>(),
                                        want.data_ptr<int64_t>() + max_length);
    const std::vector<int64_t> got = tok().tokenize(prompts[i], max_length);
    EXPECT_EQ(got, want_row);

    // Padding is EOS as well, so the length runs to the first EOS, inclusive.
    const auto first_eos = std::find(got.begin(), got.end(), tok().eos_id());
    ASSERT_NE(first_eos, got.end());
    EXPECT_EQ(first_eos - got.begin() + 1, lengths[static_cast<int64_t>(i)].item<int64_t>());
  }

  EXPECT_TRUE(torch::equal(tok().tokenize_batch(prompts, max_length), ids));
}

TEST_F(ClipTokenizerTest, DecodeRoundTripsPlainCaptions) {
  for (const std::string caption :
       {"waving hand, medium skin tone, hand gesture, google style", "a photo of a cat",
        "an astronaut riding a horse on the moon. it's 4 pm!"}) {
    const std::vector<int64_t> ids = tok().encode(caption);
    EXPECT_EQ(tok().decode(ids), caption);
    EXPECT_EQ(tok().decode(tok().tokenize(caption)), caption);  // BOS/EOS/padding dropped
  }
}

TEST_F(ClipTokenizerTest, UnescapesHtmlEntitiesTwice) {
  EXPECT_EQ(tok().encode("fish &amp; chips"), tok().encode("fish & chips"));
  EXPECT_EQ(tok().encode("&lt;3 &gt;_&lt; &quot;hi&quot; it&#39;s it&apos;s"),
            tok().encode("<3 >_< \"hi\" it's it's"));
  EXPECT_EQ(tok().encode("caf&#233; caf&#xE9; caf&#XE9"), tok().encode("café café café"));
  EXPECT_EQ(tok().encode("&amp;lt;b&amp;gt;"), tok().encode("<b>"));  // basic_clean unescapes twice
  EXPECT_EQ(tok().encode("salt&amppepper"), tok().encode("salt&pepper"));  // legacy, no ';'
  EXPECT_EQ(tok().encode("a&nbsp;&nbsp;cat"), tok().encode("a cat"));
  EXPECT_EQ(tok().encode("&#150; &#0;"), tok().encode("\u2013 \uFFFD"));  // cp1252, U+FFFD
  EXPECT_NE(tok().encode("&apos"), tok().encode("'"));  // only legacy names may omit the ';'
}

TEST_F(ClipTokenizerTest, CollapsesWhitespaceAndLowerCases) {
  const std::vector<int64_t> want = tok().encode("a photo of a cat");
  EXPECT_EQ(tok().encode("  A\t\tPHOTO \n of\u3000a\u00a0Cat \r\n"), want);
  EXPECT_EQ(tok().encode("a\u2003photo\u2029of\x1f"
                         "a\vcat"),
            want);
  EXPECT_TRUE(tok().encode(" \t\n ").empty());
  EXPECT_EQ(tok().tokenize(""), tok().tokenize("   "));
}

TEST_F(ClipTokenizerTest, NormalisesToNfc) {
  EXPECT_EQ(tok().encode("cafe\u0301 nai\u0308ve"), tok().encode("caf\u00e9 na\u00efve"));
  EXPECT_EQ(tok().encode("\u00c9T\u00c9"), tok().encode("\u00e9t\u00e9"));
}

TEST_F(ClipTokenizerTest, SplitsDigitsAndContractions) {
  const std::vector<int64_t> digits = tok().encode("2024");
  ASSERT_EQ(digits.size(), 4u);
  EXPECT_EQ(digits[0], tok().encode("2")[0]);
  EXPECT_EQ(digits[1], tok().encode("0")[0]);
  EXPECT_EQ(digits[3], tok().encode("4")[0]);
  EXPECT_EQ(tok().encode("it's"),
            (std::vector<int64_t>{tok().encode("it")[0], tok().encode("'s")[0]}));
  // The punctuation run is greedy, so "!!'s" is "!!'" + "s", not "!!" + "'s".
  EXPECT_NE(tok().encode("!!'s"),
            (std::vector<int64_t>{tok().encode("!!")[0], tok().encode("'s")[0]}));
}

// Under CLIP's regex.IGNORECASE, U+0345 (case fold: iota) matches no alternative of the pattern.
TEST_F(ClipTokenizerTest, DropsWhatClipsPatternDoesNotMatch) {
  EXPECT_EQ(tok().encode("a\u0345b"), tok().encode("a b"));
  EXPECT_EQ(tok().encode("!\u0345?"), tok().encode("! ?"));
}

TEST_F(ClipTokenizerTest, TruncatesKeepingEosLast) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += "cat ";
  const std::vector<int64_t> bpe = tok().encode(text);
  ASSERT_EQ(bpe.size(), 100u);

  const std::vector<int64_t> row = tok().tokenize(text);
  ASSERT_EQ(row.size(), static_cast<size_t>(ClipTokenizer::kMaxLength));
  EXPECT_EQ(row.front(), tok().bos_id());
  EXPECT_EQ(row[76], tok().eos_id());
  EXPECT_TRUE(std::equal(row.begin() + 1, row.begin() + 76, bpe.begin()));

  const std::vector<int64_t> short_row = tok().tokenize(text, 5);
  EXPECT_EQ(short_row,
            (std::vector<int64_t>{tok().bos_id(), bpe[0], bpe[1], bpe[2], tok().eos_id()}));
  const std::vector<int64_t> padded = tok().tokenize("cat", 5);
  EXPECT_EQ(padded, (std::vector<int64_t>{tok().bos_id(), bpe[0], tok().eos_id(), tok().eos_id(),
                                          tok().eos_id()}));
  expect_error_naming([&] { tok().tokenize("cat", 1); }, "max_length");
}

TEST_F(ClipTokenizerTest, RejectsDefectiveFiles) {
  ScratchDir dir;
  const std::string vocab = tokenizer_dir() + "/vocab.json";
  const std::string merges = tokenizer_dir() + "/merges.txt";

  const std::string missing = (fs::temp_directory_path() / "p2l_no_such_vocab.json").string();
  expect_error_naming([&] { ClipTokenizer::from_files(missing, merges); }, missing);
  expect_error_naming([&] { ClipTokenizer::from_files(vocab, missing); }, missing);

  const std::string bad_json = dir.write("bad_vocab.json", "{\"a</w>\": 1,");
  expect_error_naming([&] { ClipTokenizer::from_files(bad_json, merges); }, bad_json);
  const std::string not_object = dir.write("array_vocab.json", "[1, 2]");
  expect_error_naming([&] { ClipTokenizer::from_files(not_object, merges); }, not_object);
  const std::string bad_id = dir.write("bad_id_vocab.json", "{\"a\": \"one\"}");
  expect_error_naming([&] { ClipTokenizer::from_files(bad_id, merges); }, bad_id);

  const std::string unknown = dir.write("unknown_merges.txt", "#version: 0.2\ni n\nqzx# y\n");
  expect_error_naming([&] { ClipTokenizer::from_files(vocab, unknown); }, unknown);
  const std::string malformed =
      dir.write("malformed_merges.txt", "#version: 0.2\ni n\nthree a b\n");
  expect_error_naming([&] { ClipTokenizer::from_files(vocab, malformed); }, malformed);

  // A well-formed subset of the merges loads (fewer merges simply give shorter BPE tokens).
  const std::string few = dir.write("few_merges.txt", "#version: 0.2\nc a\nca t</w>\n");
  const ClipTokenizer small = ClipTokenizer::from_files(vocab, few);
  EXPECT_EQ(small.encode("cat"), tok().encode("cat"));
  EXPECT_EQ(small.encode("dog").size(), 3u);

  expect_error_naming([&] { tok().decode({-1}); }, "-1");
}

}  // namespace
}  // namespace p2l::model
