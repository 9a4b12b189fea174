#include "p2l/io/weight_file.h"

#include <filesystem>
#include <unordered_map>

#include "p2l/error.h"
#include "p2l/io/torch_checkpoint.h"

namespace p2l::io {

bool is_torch_checkpoint(const std::string& path) {
  const auto ext = std::filesystem::path(path).extension().string();
  return ext == ".ckpt" || ext == ".pt" || ext == ".pth" || ext == ".bin";
}

struct WeightFile::Impl {
  std::unique_ptr<SafeTensorsFile> safetensors;
  std::unique_ptr<TorchCheckpoint> checkpoint;
  std::vector<TensorInfo> infos;    // checkpoint: names inside the state dict
  std::vector<std::string> stored;  // checkpoint: the dotted path of infos[i]
  std::unordered_map<std::string, size_t> index;
};

WeightFile::WeightFile(const std::string& path) : impl_(std::make_unique<Impl>()) {
  if (!is_torch_checkpoint(path)) {
    impl_->safetensors = std::make_unique<SafeTensorsFile>(path);
    return;
  }
  impl_->checkpoint = std::make_unique<TorchCheckpoint>(path);
  const std::string wrapper = "state_dict.";
  bool wrapped = false;
  for (const auto& t : impl_->checkpoint->tensors())
    wrapped = wrapped || t.name.compare(0, wrapper.size(), wrapper) == 0;
  for (const auto& t : impl_->checkpoint->tensors()) {
    if (wrapped && t.name.compare(0, wrapper.size(), wrapper) != 0) continue;
    TensorInfo info = t;
    if (wrapped) info.name = t.name.substr(wrapper.size());
    impl_->index.emplace(info.name, impl_->infos.size());
    impl_->infos.push_back(std::move(info));
    impl_->stored.push_back(t.name);
  }
}

WeightFile::~WeightFile() = default;
WeightFile::WeightFile(WeightFile&&) noexcept = default;
WeightFile& WeightFile::operator=(WeightFile&&) noexcept = default;

const std::string& WeightFile::path() const {
  return impl_->safetensors ? impl_->safetensors->path() : impl_->checkpoint->path();
}

const std::vector<TensorInfo>& WeightFile::tensors() const {
  return impl_->safetensors ? impl_->safetensors->tensors() : impl_->infos;
}

bool WeightFile::contains(const std::string& name) const {
  return impl_->safetensors ? impl_->safetensors->contains(name) : impl_->index.count(name) != 0;
}

const TensorInfo& WeightFile::info(const std::string& name) const {
  if (impl_->safetensors) return impl_->safetensors->info(name);
  const auto it = impl_->index.find(name);
  if (it == impl_->index.end()) throw Error(path() + ": no tensor named '" + name + "'");
  return impl_->infos[it->second];
}

torch::Tensor WeightFile::load(const std::string& name) const {
  if (impl_->safetensors) return impl_->safetensors->load(name);
  info(name);  // throws if absent
  return impl_->checkpoint->load(impl_->stored[impl_->index.at(name)]);
}

}  // namespace p2l::io
