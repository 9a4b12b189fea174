// The restricted unpickler straight from bytes, without the zip around it: every opcode, the
// allow-list, the bounds, and the walk that names the tensors.
#include "fuzz_input.h"
#include "p2l/error.h"
#include "p2l/io/pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto pickle =
        p2l::io::pickle::read(reinterpret_cast<const char*>(data), size, "fuzz.pkl");
    p2l::io::pickle::named_tensors(pickle, "fuzz.pkl");
  } catch (const p2l::Error&) {
  }
  return 0;
}
