// Byte-level BPE training in the manner of OpenAI CLIP / GPT-2. The cleaning, pre-tokenising and
// byte symbols are ClipTokenizer's own (p2l/model/tokenizer.h), so training sees exactly the
// pre-tokens that encoding will.
#include "p2l/train/bpe_trainer.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <queue>
#include <unordered_map>

#include "p2l/error.h"
#include "p2l/model/tokenizer.h"

namespace p2l::train {
namespace {

constexpr char kEndOfWord[] = "</w>";
constexpr char kStartOfText[] = "<|startoftext|>";
constexpr char kEndOfText[] = "<|endoftext|>";
constexpr int kNumBytes = 256;

// ---------------------------------------------------------------------------------------------
// CLIP's vocabulary lists the byte symbols in bytes_to_unicode's dict order: the printable bytes,
// which map to themselves, then the other 68, which map to U+0100.. in byte order. That is the
// order of their code points, hence of their UTF-8 strings.
struct ByteSymbols {
  std::vector<std::string> symbol_of_id;  // 256 byte symbols, in vocabulary order
  int id_of_byte[kNumBytes];
};

const ByteSymbols& byte_symbols() {
  static const ByteSymbols table = [] {
    const std::vector<std::string>& symbol_of_byte = model::clip_byte_symbols();
    std::vector<int> order(kNumBytes);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](int a, int b) { return symbol_of_byte[a] < symbol_of_byte[b]; });
    ByteSymbols t;
    for (int id = 0; id < kNumBytes; ++id) {
      t.symbol_of_id.push_back(symbol_of_byte[order[id]]);
      t.id_of_byte[order[id]] = id;
    }
    return t;
  }();
  return table;
}

// ---------------------------------------------------------------------------------------------
// The trainer: words are deduplicated with their counts, symbols are token ids, and the count of
// every adjacent pair (weighted by word count) is kept up to date as merges rewrite the words
// that contain the merged pair. A max-heap with lazy deletion picks the next pair.

struct Word {
  std::vector<int> symbols;
  int64_t count = 0;
};

using PairKey = uint64_t;

PairKey pair_key(int left, int right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
int left_of(PairKey key) { return static_cast<int>(key >> 32); }
int right_of(PairKey key) { return static_cast<int>(key & 0xFFFFFFFFu); }

struct PairStats {
  int64_t count = 0;
  std::vector<int> words;  // indices of words that hold (or once held) the pair; may repeat
};

struct HeapEntry {
  int64_t count;
  PairKey key;
};

class Trainer {
 public:
  Trainer(std::vector<Word> words, std::vector<std::string> tokens)
      : tokens_(std::move(tokens)), words_(std::move(words)) {
    for (int id = 0; id < static_cast<int>(tokens_.size()); ++id) id_of_.emplace(tokens_[id], id);
    for (int w = 0; w < static_cast<int>(words_.size()); ++w) {
      const std::vector<int>& s = words_[w].symbols;
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        PairStats& stats = pairs_[pair_key(s[i], s[i + 1])];
        stats.count += words_[w].count;
        stats.words.push_back(w);
      }
    }
    // Pushed in key order so that nothing depends on the hash map's iteration order.
    std::vector<PairKey> keys;
    for (const auto& [key, stats] : pairs_) keys.push_back(key);
    std::sort(keys.begin(), keys.end());
    for (PairKey key : keys) heap_.push({pairs_[key].count, key});
  }

  BpeVocabulary run(const BpeTrainerOptions& options) {
    BpeVocabulary vocab;
    while (static_cast<int>(vocab.merges.size()) < options.num_merges) {
      const PairKey key = next_pair(options.min_frequency);
      if (key == kNoPair) break;
      const std::string& left = tokens_[left_of(key)];
      const std::string& right = tokens_[right_of(key)];
      vocab.merges.emplace_back(left, right);
      merge(key);
    }
    vocab.tokens = std::move(tokens_);
    return vocab;
  }

 private:
  static constexpr PairKey kNoPair = ~PairKey{0};

  // Highest count first; equal counts go to the smaller (left, right) byte strings.
  struct Lower {
    const std::vector<std::string>* tokens;
    bool operator()(const HeapEntry& a, const HeapEntry& b) const {
      if (a.count != b.count) return a.count < b.count;
      const std::string& al = (*tokens)[left_of(a.key)];
      const std::string& bl = (*tokens)[left_of(b.key)];
      if (al != bl) return al > bl;
      return (*tokens)[right_of(a.key)] > (*tokens)[right_of(b.key)];
    }
  };

  PairKey next_pair(int min_frequency) {
    while (!heap_.empty()) {
      const HeapEntry top = heap_.top();
      auto it = pairs_.find(top.key);
      if (it == pairs_.end() || it->second.count != top.count) {  // stale entry
        heap_.pop();
        continue;
      }
      if (top.count < min_frequency) return kNoPair;
      heap_.pop();
      // A second route to an existing token would give it two ids; CLIP's ids are dense and
      // unique, so such a pair is never merged (it is re-pushed only when its count changes).
      if (id_of_.count(tokens_[left_of(top.key)] + tokens_[right_of(top.key)]) != 0) continue;
      return top.key;
    }
    return kNoPair;
  }

  void merge(PairKey key) {
    const int a = left_of(key);
    const int b = right_of(key);
    const int merged = static_cast<int>(tokens_.size());
    tokens_.push_back(tokens_[a] + tokens_[b]);
    id_of_.emplace(tokens_.back(), merged);

    std::vector<int> candidates = std::move(pairs_[key].words);
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());

    std::vector<PairKey> touched;
    std::vector<int> rewritten;
    for (int w : candidates) {
      std::vector<int>& s = words_[w].symbols;
      const int64_t count = words_[w].count;
      bool present = false;
      for (size_t i = 0; i + 1 < s.size() && !present; ++i) present = s[i] == a && s[i + 1] == b;
      if (!present) continue;  // the list is not pruned when a word loses a pair

      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const PairKey k = pair_key(s[i], s[i + 1]);
        pairs_[k].count -= count;
        touched.push_back(k);
      }
      // Left to right without overlap, exactly as ClipTokenizer::bpe applies a merge.
      rewritten.clear();
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          rewritten.push_back(merged);
          i += 2;
        } else {
          rewritten.push_back(s[i]);
          i += 1;
        }
      }
      s.swap(rewritten);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const PairKey k = pair_key(s[i], s[i + 1]);
        PairStats& stats = pairs_[k];
        stats.count += count;
        // Pairs without the new symbol already list this word.
        if (s[i] == merged || s[i + 1] == merged) stats.words.push_back(w);
        touched.push_back(k);
      }
    }

    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (PairKey k : touched) {
      auto it = pairs_.find(k);
      if (it->second.count > 0) {
        heap_.push({it->second.count, k});
      } else {
        pairs_.erase(it);
      }
    }
    pairs_.erase(key);  // every occurrence was merged
  }

  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int> id_of_;
  std::vector<Word> words_;
  std::unordered_map<PairKey, PairStats> pairs_;
  std::priority_queue<HeapEntry, std::vector<HeapEntry>, Lower> heap_{Lower{&tokens_}};
};

// ---------------------------------------------------------------------------------------------
// Output.

[[noreturn]] void fail_write(const std::string& path, const std::string& what) {
  throw Error("bpe_trainer: cannot write " + path + ": " + what);
}

std::string errno_text() { return std::strerror(errno); }

// Temporary file + fsync + rename, so that a reader never sees a half-written file.
void write_atomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail_write(path, "cannot create " + tmp + ": " + errno_text());
  auto abort_write = [&](const std::string& what) {
    const std::string reason = what + ": " + errno_text();
    ::close(fd);
    ::unlink(tmp.c_str());
    fail_write(path, reason);
  };
  for (size_t done = 0; done < content.size();) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) abort_write("write failed");
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) abort_write("fsync failed");
  if (::close(fd) != 0) {
    const std::string reason = errno_text();
    ::unlink(tmp.c_str());
    fail_write(path, "close failed: " + reason);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = errno_text();
    ::unlink(tmp.c_str());
    fail_write(path, "cannot rename from " + tmp + ": " + reason);
  }
}

}  // namespace

BpeVocabulary train_bpe(const std::vector<std::string>& texts, const BpeTrainerOptions& options) {
  if (options.num_merges < 0) {
    throw Error("bpe_trainer: num_merges must be >= 0, got " + std::to_string(options.num_merges));
  }
  if (options.min_frequency < 1) {
    throw Error("bpe_trainer: min_frequency must be >= 1, got " +
                std::to_string(options.min_frequency));
  }
  const ByteSymbols& bytes = byte_symbols();

  // Distinct pre-tokens with their counts, in order of first occurrence (for determinism).
  std::unordered_map<std::string, int> index_of_word;
  std::vector<Word> words;
  for (const std::string& text : texts) {
    for (std::string& piece : model::clip_pre_tokenize(text)) {
      // The tokenizer emits the special tokens whole, so they take no part in BPE.
      if (piece == kStartOfText || piece == kEndOfText) continue;
      auto [it, inserted] = index_of_word.emplace(std::move(piece), static_cast<int>(words.size()));
      if (inserted) {
        Word word;
        for (unsigned char c : it->first) word.symbols.push_back(bytes.id_of_byte[c]);
        word.symbols.back() += kNumBytes;  // the "</w>" variant of the last byte
        words.push_back(std::move(word));
      }
      words[it->second].count += 1;
    }
  }
  // Single-symbol words have no pairs.
  words.erase(std::remove_if(words.begin(), words.end(),
                             [](const Word& w) { return w.symbols.size() < 2; }),
              words.end());

  std::vector<std::string> tokens = bytes.symbol_of_id;
  for (const std::string& s : bytes.symbol_of_id) tokens.push_back(s + kEndOfWord);
  // The special tokens are added last, so they are not in the trainer's table; a merge can never
  // produce them anyway (they mix letters and punctuation, which no pre-token does).
  BpeVocabulary vocab = Trainer(std::move(words), std::move(tokens)).run(options);
  vocab.tokens.push_back(kStartOfText);
  vocab.tokens.push_back(kEndOfText);
  return vocab;
}

void write_clip_vocabulary(const BpeVocabulary& vocab, const std::string& dir) {
  const size_t n = vocab.tokens.size();
  const auto fail_layout = [&](const std::string& what) {
    throw Error("bpe_trainer: vocabulary for " + dir + " is not in CLIP's layout: " + what);
  };
  // ClipTokenizer rejects a merges.txt without merges.
  if (vocab.merges.empty()) fail_layout("it has no merges");
  if (n != 2 * kNumBytes + vocab.merges.size() + 2) {
    fail_layout(std::to_string(n) + " tokens for " + std::to_string(vocab.merges.size()) +
                " merges (expected 512 + merges + 2)");
  }
  if (vocab.tokens[n - 2] != kStartOfText || vocab.tokens[n - 1] != kEndOfText) {
    fail_layout("the last two tokens must be <|startoftext|> and <|endoftext|>");
  }

  nlohmann::json json = nlohmann::json::object();
  for (size_t id = 0; id < n; ++id) {
    if (json.contains(vocab.tokens[id])) fail_layout("token '" + vocab.tokens[id] + "' repeats");
    json[vocab.tokens[id]] = id;
  }
  std::string merges = "#version: 0.2\n";
  for (size_t i = 0; i < vocab.merges.size(); ++i) {
    const auto& [left, right] = vocab.merges[i];
    // Byte-encoded symbols never hold a raw space or newline, which would break the line format.
    if (left.empty() || right.empty() || left.find_first_of(" \n\r") != std::string::npos ||
        right.find_first_of(" \n\r") != std::string::npos) {
      fail_layout("merge " + std::to_string(i) + " ('" + left + "', '" + right + "') is malformed");
    }
    if (vocab.tokens[2 * kNumBytes + i] != left + right) {
      fail_layout("merge " + std::to_string(i) + " does not match token " +
                  std::to_string(2 * kNumBytes + i));
    }
    merges += left + " " + right + "\n";
  }

  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) fail_write(dir, ec.message());
  }
  const std::string base = dir.empty() || dir.back() == '/' ? dir : dir + "/";
  // Keys sorted, indent 2, UTF-8 unescaped: the layout of Hugging Face's CLIP vocab.json.
  write_atomically(base + "vocab.json", json.dump(2) + "\n");
  write_atomically(base + "merges.txt", merges);
}

}  // namespace p2l::train
