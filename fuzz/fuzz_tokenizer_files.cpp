// A tokenizer from fuzzed vocab.json and merges.txt (the input is vocab.json, kSplit, then
// merges.txt), then used on a fixed prompt: a file that loads must also tokenize and decode.
#include "fuzz_input.h"
#include "p2l/error.h"
#include "p2l/model/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto [vocab, merges] = p2l::fuzz::split_input(p2l::fuzz::as_text(data, size));
  const auto vocab_path = p2l::fuzz::write_scratch("vocab.json", vocab);
  const auto merges_path = p2l::fuzz::write_scratch("merges.txt", merges);
  try {
    const auto tokenizer = p2l::model::ClipTokenizer::from_files(vocab_path, merges_path);
    tokenizer.decode(tokenizer.tokenize("a photo of an astronaut riding a horse, 4k!"));
  } catch (const p2l::Error&) {
  }
  return 0;
}
