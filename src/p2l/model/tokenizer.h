// CLIP's byte-level BPE tokenizer (vocab.json + merges.txt), as used by Stable Diffusion v1.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace p2l::model {

// CLIP's text pipeline, shared with the BPE trainer: the text is cleaned (HTML unescaped twice,
// NFC, whitespace collapsed and trimmed, lower-cased; invalid UTF-8 becomes U+FFFD) and split
// with CLIP's pre-tokenising pattern. Returns the UTF-8 pre-tokens; "<|startoftext|>" and
// "<|endoftext|>" come out whole.
std::vector<std::string> clip_pre_tokenize(const std::string& text);

// GPT-2/CLIP bytes_to_unicode: the printable symbol of each byte, as UTF-8 (index = byte value).
// Printable Latin-1 bytes map to themselves, the other 68 to U+0100.. in byte order.
const std::vector<std::string>& clip_byte_symbols();

class ClipTokenizer {
 public:
  // SD v1 / CLIP conventions.
  static constexpr int64_t kDefaultBos = 49406;  // <|startoftext|>
  static constexpr int64_t kDefaultEos = 49407;  // <|endoftext|>, also the padding token in SD v1
  static constexpr int kMaxLength = 77;

  // Reads vocab.json and merges.txt; throws p2l::Error naming the file on any defect.
  static ClipTokenizer from_files(const std::string& vocab_json, const std::string& merges_txt);
  // A folder holding vocab.json and merges.txt (a diffusers tokenizer/ folder).
  static ClipTokenizer from_directory(const std::string& dir);

  // BPE ids of the cleaned text, without BOS/EOS, untruncated.
  // Texts longer than this are refused: a megabyte of prompt would only be tokenized to be cut.
  static constexpr size_t kMaxPromptBytes = 16384;
  std::vector<int64_t> encode(const std::string& text) const;
  // BOS + ids + EOS, truncated to max_length (keeping EOS last), padded with EOS to max_length.
  std::vector<int64_t> tokenize(const std::string& text, int max_length = kMaxLength) const;
  // [batch, max_length] int64 tensor of tokenize() rows.
  torch::Tensor tokenize_batch(const std::vector<std::string>& texts,
                               int max_length = kMaxLength) const;
  // Ids back to text as CLIPTokenizer.decode(ids, skip_special_tokens=True) does: BOS/EOS dropped,
  // </w> turned into spaces, trimmed, then clean_up_tokenization (" ," -> "," etc.).
  std::string decode(const std::vector<int64_t>& ids) const;

  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }
  size_t vocab_size() const { return id_of_.size(); }

 private:
  ClipTokenizer() = default;
  std::vector<std::string> bpe(const std::string& word) const;

  std::unordered_map<std::string, int64_t> id_of_;
  std::vector<std::string> token_of_;                // indexed by id
  std::vector<bool> has_token_;                      // false for ids that vocab.json skips
  std::unordered_map<std::string, int> merge_rank_;  // key: left + '\x01' + right
  std::string vocab_path_;                           // for error messages
  int64_t bos_id_ = kDefaultBos;
  int64_t eos_id_ = kDefaultEos;
};

}  // namespace p2l::model
