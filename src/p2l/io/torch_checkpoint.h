// PyTorch checkpoints as torch.save writes them (.ckpt, .pt, .pth, .bin), read without Python:
//  - the zip format (torch >= 1.6): <archive>/data.pkl plus one entry <archive>/data/<key> per
//    storage, read with libzip;
//  - the legacy format (before 1.6): five pickles back to back (magic number, protocol version,
//    system info, the object, the storage keys), then each storage as an int64 element count
//    followed by its bytes.
// The pickle is read by p2l's restricted reader (pickle.h): only state-dict content is accepted
// and nothing in the file is ever run. Opening reads the pickle only, so shapes and dtypes come
// without the weights; load() then reads just the bytes one tensor covers, straight into its
// buffer (one copy; a 4 GB checkpoint never needs 8 GB).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "p2l/io/safetensors.h"

namespace p2l::io {

class TorchCheckpoint {
 public:
  // Opens, reads the pickle and checks every tensor against its storage; throws p2l::Error
  // (one line naming the file and the defect, or the global a pickle is refused for).
  explicit TorchCheckpoint(const std::string& path);
  ~TorchCheckpoint();
  TorchCheckpoint(const TorchCheckpoint&) = delete;
  TorchCheckpoint& operator=(const TorchCheckpoint&) = delete;
  TorchCheckpoint(TorchCheckpoint&&) noexcept;
  TorchCheckpoint& operator=(TorchCheckpoint&&) noexcept;

  const std::string& path() const;
  bool legacy() const;  // the pre-1.6 format
  // Every tensor by dotted path inside the pickle ("state_dict.model.w"), in pickle order.
  // begin/end are unused (0).
  const std::vector<TensorInfo>& tensors() const;
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws p2l::Error if absent
  // A CPU tensor in the stored dtype, shape and strides (a view keeps its strides; its buffer
  // holds only the elements the view spans).
  torch::Tensor load(const std::string& name) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace p2l::io
