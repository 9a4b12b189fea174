// A measurement as `p2l restore` reads it: the input is the JSON, kSplit, then the safetensors
// file the JSON names (the seeds name "measurement.safetensors"), so the operator description,
// the tensors and the checks between them are fuzzed together.
#include "fuzz_input.h"
#include "p2l/error.h"
#include "p2l/operators/measurement.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto [json, tensors] = p2l::fuzz::split_input(p2l::fuzz::as_text(data, size));
  p2l::fuzz::write_scratch("measurement.safetensors", tensors);
  const auto path = p2l::fuzz::write_scratch("measurement.json", json);
  try {
    p2l::operators::load_measurement(path);
  } catch (const p2l::Error&) {
  }
  return 0;
}
