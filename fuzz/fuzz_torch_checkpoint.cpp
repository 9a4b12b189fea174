// A whole PyTorch checkpoint file (zip or legacy), read as p2l reads any weight file, then every
// tensor loaded: the zip entries, the storages and the views checked against them.
#include "fuzz_input.h"
#include "p2l/error.h"
#include "p2l/io/weight_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = p2l::fuzz::write_scratch("input.ckpt", p2l::fuzz::as_text(data, size));
  try {
    p2l::io::WeightFile file(path);
    for (const auto& info : file.tensors()) file.load(info.name);
  } catch (const p2l::Error&) {
  }
  return 0;
}
