// Arbitrary bytes as a prompt (invalid UTF-8 included) through the real CLIP vocabulary in
// data/clip-tokenizer: cleaning, pre-tokenising, BPE, and decoding the ids back.
#include "fuzz_input.h"
#include "p2l/error.h"
#include "p2l/model/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto tokenizer =
      p2l::model::ClipTokenizer::from_directory(P2L_SOURCE_DIR "/data/clip-tokenizer");
  try {
    const auto ids = tokenizer.encode(std::string(p2l::fuzz::as_text(data, size)));
    tokenizer.decode(ids);
    tokenizer.tokenize(std::string(p2l::fuzz::as_text(data, size)));
  } catch (const p2l::Error&) {
  }
  return 0;
}
