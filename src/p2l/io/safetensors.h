// Reader and writer for the safetensors format (https://github.com/huggingface/safetensors):
// u64 little-endian header length N, N bytes of JSON, then the raw little-endian tensor data.
// The reader validates the header as the format requires before touching any data and maps the
// file into memory, so a tensor is copied once, straight from the page cache into its tensor.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace p2l::io {

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL };

// "F32" etc. <-> DType; element size in bytes; the matching torch dtype.
std::string dtype_name(DType dtype);
DType dtype_from_name(const std::string& name);  // throws p2l::Error on an unknown name
size_t dtype_size(DType dtype);
torch::ScalarType to_torch(DType dtype);
DType from_torch(torch::ScalarType type);  // throws p2l::Error for unsupported torch dtypes

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the first byte after the header
  uint64_t end = 0;
};

class SafeTensorsFile {
 public:
  // Opens and validates; throws p2l::Error naming the file and the defect.
  explicit SafeTensorsFile(const std::string& path);
  ~SafeTensorsFile();
  SafeTensorsFile(const SafeTensorsFile&) = delete;
  SafeTensorsFile& operator=(const SafeTensorsFile&) = delete;
  SafeTensorsFile(SafeTensorsFile&&) noexcept;
  SafeTensorsFile& operator=(SafeTensorsFile&&) noexcept;

  const std::string& path() const;
  // Tensors in data-offset order.
  const std::vector<TensorInfo>& tensors() const;
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws p2l::Error if absent
  const std::map<std::string, std::string>& metadata() const;

  // A CPU tensor that owns its memory, in the stored dtype.
  torch::Tensor load(const std::string& name) const;
  // All tensors by name.
  std::map<std::string, torch::Tensor> load_all() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes tensors (any device; made contiguous and moved to CPU) in the order given, with a
// __metadata__ block of `metadata` plus "format": "pt" (what the Hugging Face libraries expect)
// unless `metadata` gives a format. Writes to a temporary file and renames it, so a crash never
// leaves a truncated file under the final name.
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace p2l::io
