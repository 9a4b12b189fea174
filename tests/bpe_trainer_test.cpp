// train_bpe / write_clip_vocabulary, checked through their consumer, ClipTokenizer.
#include "p2l/train/bpe_trainer.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "p2l/error.h"
#include "p2l/model/tokenizer.h"

namespace p2l::train {
namespace {

namespace fs = std::filesystem;
using model::ClipTokenizer;

// Emoji-style captions: "<name>, <detail>, <category>, <vendor> style".
std::vector<std::string> emoji_captions() {
  const std::vector<std::string> names = {"waving hand", "thumbs up",  "grinning face",
                                          "red heart",   "cat face",   "woman's hat",
                                          "keycap 1",    "raised fist"};
  const std::vector<std::string> details = {"medium skin tone", "face smiling", "light skin tone",
                                            "dark skin tone", "face affection"};
  const std::vector<std::string> categories = {"hand gesture", "smileys", "animal", "symbols"};
  const std::vector<std::string> vendors = {"google", "twitter", "apple", "samsung", "microsoft"};
  std::vector<std::string> captions;
  for (size_t i = 0; i < 50; ++i) {
    captions.push_back(names[i % names.size()] + ", " + details[(i / 2) % details.size()] + ", " +
                       categories[(i / 3) % categories.size()] + ", " +
                       vendors[(i / 5) % vendors.size()] + " style");
  }
  captions.push_back("grinning face, face smiling, twitter style");
  return captions;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class BpeTrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("p2l_bpe_trainer_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Trains on `texts`, writes under dir_/name, loads it back.
  ClipTokenizer train_and_load(const std::vector<std::string>& texts,
                               const BpeTrainerOptions& options,
                               const std::string& name = "vocab") {
    write_clip_vocabulary(train_bpe(texts, options), (dir_ / name).string());
    return ClipTokenizer::from_directory((dir_ / name).string());
  }

  fs::path dir_;
};

TEST_F(BpeTrainerTest, SpecialTokensAreTheLastTwoIds) {
  const BpeVocabulary vocab = train_bpe(emoji_captions(), {});
  const ClipTokenizer tok = train_and_load(emoji_captions(), {});
  ASSERT_FALSE(vocab.merges.empty());
  EXPECT_EQ(tok.vocab_size(), 512 + vocab.merges.size() + 2);
  EXPECT_EQ(tok.vocab_size(), vocab.tokens.size());
  EXPECT_EQ(tok.bos_id(), static_cast<int64_t>(tok.vocab_size()) - 2);
  EXPECT_EQ(tok.eos_id(), static_cast<int64_t>(tok.vocab_size()) - 1);
  EXPECT_EQ(tok.encode("<|startoftext|> hand <|endoftext|>").front(), tok.bos_id());
  EXPECT_EQ(tok.encode("<|startoftext|> hand <|endoftext|>").back(), tok.eos_id());
}

TEST_F(BpeTrainerTest, LayoutMatchesClip) {
  const BpeVocabulary vocab = train_bpe(emoji_captions(), {});
  ASSERT_GT(vocab.tokens.size(), 514u);
  // bytes_to_unicode order: printable bytes first, then the rest from U+0100 on.
  EXPECT_EQ(vocab.tokens[0], "!");
  EXPECT_EQ(vocab.tokens[93], "~");
  EXPECT_EQ(vocab.tokens[94], "\u00a1");
  EXPECT_EQ(vocab.tokens[187], "\u00ff");
  EXPECT_EQ(vocab.tokens[188], "\u0100");  // byte 0x00
  EXPECT_EQ(vocab.tokens[255], "\u0143");  // byte 0xAD
  EXPECT_EQ(vocab.tokens[256], "!</w>");
  EXPECT_EQ(vocab.tokens[511], "\u0143</w>");
  for (size_t i = 0; i < vocab.merges.size(); ++i) {
    EXPECT_EQ(vocab.tokens[512 + i], vocab.merges[i].first + vocab.merges[i].second);
  }
  EXPECT_EQ(vocab.tokens[vocab.tokens.size() - 2], "<|startoftext|>");
  EXPECT_EQ(vocab.tokens.back(), "<|endoftext|>");

  write_clip_vocabulary(vocab, dir_.string());
  const std::string merges = read_text(dir_ / "merges.txt");
  EXPECT_EQ(merges.rfind(
                "#version: 0.2\n" + vocab.merges[0].first + " " + vocab.merges[0].second + "\n", 0),
            0u);
  const nlohmann::json json = nlohmann::json::parse(read_text(dir_ / "vocab.json"));
  ASSERT_EQ(json.size(), vocab.tokens.size());
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    EXPECT_EQ(json.at(vocab.tokens[id]).get<size_t>(), id);
  }
}

// The classic example (Sennrich et al.): low x5, lower x2, newest x6, widest x3.
TEST_F(BpeTrainerTest, LearnsTheTextbookMergesWithLexicographicTies) {
  std::vector<std::string> texts;
  for (const auto& [word, n] : std::vector<std::pair<std::string, int>>{
           {"low", 5}, {"lower", 2}, {"newest", 6}, {"widest", 3}}) {
    for (int i = 0; i < n; ++i) texts.push_back(word);
  }
  BpeTrainerOptions options;
  options.num_merges = 4;
  const BpeVocabulary vocab = train_bpe(texts, options);
  // (e,s) and (s,t</w>) both occur 9 times; "e" < "s". Then (e,w), (n,e), (w,est</w>) tie at 6.
  const std::vector<std::pair<std::string, std::string>> want = {
      {"e", "s"}, {"es", "t</w>"}, {"l", "o"}, {"e", "w"}};
  EXPECT_EQ(vocab.merges, want);
}

TEST_F(BpeTrainerTest, RoundTripsEveryTrainingCaption) {
  const ClipTokenizer tok = train_and_load(emoji_captions(), {});
  for (const std::string& caption : emoji_captions()) {
    const std::vector<int64_t> ids = tok.encode(caption);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(tok.decode(ids), caption);
    EXPECT_EQ(tok.decode(tok.tokenize(caption)), caption);
  }
}

TEST_F(BpeTrainerTest, FrequentWordsBecomeSingleTokens) {
  const ClipTokenizer tok = train_and_load(emoji_captions(), {});
  for (const std::string word : {"style", "face", "hand", "skin", "tone", ","}) {
    EXPECT_EQ(tok.encode(word).size(), 1u) << word;
  }
  // A word never seen is spelled out in smaller pieces.
  EXPECT_GT(tok.encode("xylophone").size(), 1u);
}

TEST_F(BpeTrainerTest, MergeCountIsCappedByWhatTheCorpusAllows) {
  BpeTrainerOptions unbounded;
  unbounded.num_merges = 1000000;
  const BpeVocabulary all = train_bpe(emoji_captions(), unbounded);
  ASSERT_GT(all.merges.size(), 10u);
  ASSERT_LT(all.merges.size(), 1000000u);

  BpeTrainerOptions capped;
  capped.num_merges = static_cast<int>(all.merges.size() / 2);
  const BpeVocabulary some = train_bpe(emoji_captions(), capped);
  ASSERT_EQ(some.merges.size(), all.merges.size() / 2);
  // Capping only stops training earlier.
  EXPECT_TRUE(std::equal(some.merges.begin(), some.merges.end(), all.merges.begin()));

  for (const BpeVocabulary* vocab : {&all, &some}) {
    write_clip_vocabulary(*vocab, dir_.string());
    std::ifstream in(dir_ / "merges.txt");
    std::string line;
    size_t lines = 0;
    while (std::getline(in, line)) ++lines;
    EXPECT_EQ(lines, 1 + vocab->merges.size());  // plus the "#version" line
    EXPECT_EQ(ClipTokenizer::from_directory(dir_.string()).vocab_size(),
              514 + vocab->merges.size());
  }

  // Raising min_frequency only stops training earlier as well.
  BpeTrainerOptions frequent = unbounded;
  frequent.min_frequency = 10;
  const BpeVocabulary fewer = train_bpe(emoji_captions(), frequent);
  EXPECT_LT(fewer.merges.size(), all.merges.size());
  EXPECT_TRUE(std::equal(fewer.merges.begin(), fewer.merges.end(), all.merges.begin()));
}

TEST_F(BpeTrainerTest, TrainingIsDeterministic) {
  const BpeTrainerOptions options;
  write_clip_vocabulary(train_bpe(emoji_captions(), options), (dir_ / "a").string());
  write_clip_vocabulary(train_bpe(emoji_captions(), options), (dir_ / "b").string());
  for (const char* name : {"vocab.json", "merges.txt"}) {
    const std::string a = read_text(dir_ / "a" / name);
    EXPECT_FALSE(a.empty());
    EXPECT_EQ(a, read_text(dir_ / "b" / name)) << name;
  }
}

TEST_F(BpeTrainerTest, UnseenCharactersFallBackToBytes) {
  const ClipTokenizer tok = train_and_load(emoji_captions(), {});
  const std::string text = "zebra \u00fcn\u00efcode \U0001F431";
  const std::vector<int64_t> ids = tok.encode(text);
  EXPECT_GE(ids.size(), 3u);
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_EQ(tok.decode(tok.encode("ZEBRA  \u00dcN\u00cfCODE")), "zebra \u00fcn\u00efcode");
}

TEST_F(BpeTrainerTest, TrainsOnNonAsciiCaptions) {
  std::vector<std::string> texts = emoji_captions();
  for (int i = 0; i < 5; ++i) texts.push_back("caf\u00e9 \U0001F431 cat, na\u00efve");
  const ClipTokenizer tok = train_and_load(texts, {});
  EXPECT_EQ(tok.encode("caf\u00e9").size(), 1u);
  EXPECT_EQ(tok.encode("\U0001F431").size(), 1u);  // four bytes merged into one token
  for (const std::string& text : texts) EXPECT_EQ(tok.decode(tok.encode(text)), text);
}

TEST_F(BpeTrainerTest, WriteToUnwritablePathThrowsNamingIt) {
  const BpeVocabulary vocab = train_bpe(emoji_captions(), {});
  fs::create_directories(dir_);
  const fs::path blocker = dir_ / "not_a_dir";
  std::ofstream(blocker) << "x";
  const std::string target = (blocker / "tokenizer").string();
  try {
    write_clip_vocabulary(vocab, target);
    ADD_FAILURE() << "no p2l::Error for " << target;
  } catch (const p2l::Error& e) {
    EXPECT_NE(std::string(e.what()).find(target), std::string::npos) << e.what();
  }
  // Nothing was left behind in the folder that does exist.
  size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir_)) ++entries;
  EXPECT_EQ(entries, 1u);
}

TEST_F(BpeTrainerTest, RejectsBadOptionsAndVocabularies) {
  BpeTrainerOptions options;
  options.num_merges = -1;
  EXPECT_THROW(train_bpe(emoji_captions(), options), p2l::Error);
  options = {};
  options.min_frequency = 0;
  EXPECT_THROW(train_bpe(emoji_captions(), options), p2l::Error);

  // ClipTokenizer refuses a merges.txt without merges, so the writer does too.
  const BpeVocabulary empty = train_bpe({}, {});
  EXPECT_TRUE(empty.merges.empty());
  EXPECT_EQ(empty.tokens.size(), 514u);
  EXPECT_THROW(write_clip_vocabulary(empty, dir_.string()), p2l::Error);

  BpeVocabulary broken = train_bpe(emoji_captions(), {});
  broken.tokens.pop_back();
  EXPECT_THROW(write_clip_vocabulary(broken, dir_.string()), p2l::Error);
}

// The emoji corpus is ~8k captions of ~10 words; training must not be the slow step.
TEST_F(BpeTrainerTest, TrainsALargeCorpusToTheRequestedMerges) {
  uint64_t state = 42;
  auto next = [&state](uint64_t n) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (state >> 33) % n;
  };
  std::vector<std::string> words;
  for (int i = 0; i < 2000; ++i) {
    std::string w;
    const uint64_t length = 3 + next(7);
    for (uint64_t k = 0; k < length; ++k) w.push_back(static_cast<char>('a' + next(26)));
    words.push_back(w);
  }
  std::vector<std::string> captions;
  for (int i = 0; i < 10000; ++i) {
    std::string caption;
    for (int k = 0; k < 10; ++k) {
      caption += (k == 0 ? "" : k % 3 == 0 ? ", " : " ") + words[next(words.size())];
    }
    captions.push_back(caption);
  }
  BpeTrainerOptions options;
  options.num_merges = 5000;
  // Speed is a benchmark's business, not a test's; this checks the large case is right.
  const BpeVocabulary vocab = train_bpe(captions, options);
  EXPECT_GT(vocab.merges.size(), 1000u);
}

}  // namespace
}  // namespace p2l::train
