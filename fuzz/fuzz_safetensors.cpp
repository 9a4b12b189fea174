// The safetensors reader: header length, JSON header, dtypes, shapes and data offsets, then every
// tensor loaded (the offsets are only trusted once the header has been validated).
#include "fuzz_input.h"
#include "p2l/error.h"
#include "p2l/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = p2l::fuzz::write_scratch("input.safetensors", p2l::fuzz::as_text(data, size));
  try {
    p2l::io::SafeTensorsFile file(path);
    file.load_all();
  } catch (const p2l::Error&) {
  }
  return 0;
}
