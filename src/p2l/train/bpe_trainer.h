// Byte-level BPE training that writes a vocabulary in OpenAI CLIP's format (vocab.json +
// merges.txt), so that p2l::model::ClipTokenizer reads it unchanged.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace p2l::train {

struct BpeTrainerOptions {
  int num_merges = 1000;  // upper bound; training stops earlier when no pair is frequent enough
  int min_frequency = 2;  // a pair must occur at least this often (weighted by word count)
};

// CLIP's layout: ids 0..255 are the byte symbols in bytes_to_unicode order, 256..511 the same
// with "</w>" appended, then one token per merge (the concatenation, in merge order), then
// <|startoftext|> (BOS, size - 2) and <|endoftext|> (EOS, size - 1).
struct BpeVocabulary {
  std::vector<std::string> tokens;                          // indexed by id
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
};

// Cleans and pre-tokenises `texts` with ClipTokenizer's own pipeline (model::clip_pre_tokenize;
// the special tokens are left out), then learns merges by repeatedly merging the most frequent
// adjacent pair of symbols. Ties go to the lexicographically smallest (left, right) byte strings,
// so the result depends only on the input. A pair whose concatenation is already a token is never
// merged, which keeps every token unique and the ids dense, as in CLIP's own vocabulary. Throws
// p2l::Error on bad options.
BpeVocabulary train_bpe(const std::vector<std::string>& texts, const BpeTrainerOptions& options);

// Writes dir/vocab.json (token -> id, UTF-8) and dir/merges.txt ("#version: 0.2", then
// "left right" per merge), creating `dir` if needed. Each file is written to a temporary name
// and renamed. Throws p2l::Error naming the path on I/O failure, and on a vocabulary that
// ClipTokenizer would reject (wrong layout, no merges).
void write_clip_vocabulary(const BpeVocabulary& vocab, const std::string& dir);

}  // namespace p2l::train
