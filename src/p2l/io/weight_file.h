// The named tensors of one weight file, whatever its format: safetensors, or a PyTorch
// checkpoint (torch.save: .ckpt, .pt, .pth, .bin). A checkpoint's tensors are those of its
// 'state_dict' entry when it has one (Lightning checkpoints such as SD's release files), else all
// the tensors it holds, by dotted path.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "p2l/io/safetensors.h"

namespace p2l::io {

// Whether p2l reads `path` as a PyTorch checkpoint (by its extension).
bool is_torch_checkpoint(const std::string& path);

class WeightFile {
 public:
  // Opens by extension: .safetensors, else a PyTorch checkpoint. Reads headers (or the pickle)
  // only; throws p2l::Error naming the file and the defect.
  explicit WeightFile(const std::string& path);
  ~WeightFile();
  WeightFile(WeightFile&&) noexcept;
  WeightFile& operator=(WeightFile&&) noexcept;

  const std::string& path() const;
  const std::vector<TensorInfo>& tensors() const;  // begin/end only for safetensors
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws p2l::Error if absent
  // A CPU tensor in the stored dtype (a checkpoint's view keeps its strides).
  torch::Tensor load(const std::string& name) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace p2l::io
