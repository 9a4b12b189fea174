// The original-layout YAML (v1-inference.yaml) read against the tensor shapes of the golden
// single file, as `p2l` does for a .ckpt/.safetensors with a .yaml beside it.
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "fuzz_input.h"
#include "p2l/error.h"
#include "p2l/model/checkpoint.h"

namespace {

using Shapes = std::map<std::string, std::vector<int64_t>>;

// The golden file's header is the start of its recipe's .rest part (u64 length + JSON), so the
// shapes come without assembling the 25 MB file.
Shapes golden_shapes() {
  std::ifstream in(P2L_SOURCE_DIR "/tests/goldens/sd_v1_tiny_compvis.safetensors.rest",
                   std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint64_t length = 0;
  if (bytes.size() < 8) std::abort();
  std::memcpy(&length, bytes.data(), 8);
  const auto header = nlohmann::json::parse(bytes.substr(8, length));
  Shapes shapes;
  for (const auto& [name, entry] : header.items())
    if (name != "__metadata__") shapes[name] = entry.at("shape").get<std::vector<int64_t>>();
  return shapes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Shapes shapes = golden_shapes();
  const auto path = p2l::fuzz::write_scratch("model.yaml", p2l::fuzz::as_text(data, size));
  try {
    p2l::model::config_from_original_yaml(path, shapes);
  } catch (const p2l::Error&) {
  }
  return 0;
}
