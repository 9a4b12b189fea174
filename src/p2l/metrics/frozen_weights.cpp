#include "p2l/metrics/frozen_weights.h"

#include "p2l/error.h"
#include "p2l/log.h"
#include "p2l/model/checkpoint.h"

namespace p2l::metrics {

void load_frozen(torch::nn::Module& net, const io::SafeTensorsFile& file, torch::Device device,
                 const std::string& what, Buffers buffers) {
  const std::string& path = file.path();
  size_t used = 0;
  auto lookup = [&](const std::string& name) -> torch::Tensor {
    if (!file.contains(name)) return {};
    ++used;
    return file.load(name);
  };
  model::load_module_tensors(net, lookup, [](const std::string& name) { return name; }, path);
  if (buffers == Buffers::kLoad) {
    // load_module_tensors covers parameters; the batch-norm statistics are buffers. The update
    // counter plays no part in evaluation and may be absent.
    torch::NoGradGuard no_grad;
    const std::string counter = "num_batches_tracked";
    for (auto& item : net.named_buffers(/*recurse=*/true)) {
      const auto& name = item.key();
      auto& buffer = item.value();
      if (name.size() >= counter.size() &&
          name.compare(name.size() - counter.size(), counter.size(), counter) == 0)
        continue;
      auto stored = lookup(name);
      if (!stored.defined())
        throw Error(path + ": missing tensor " + name + " (expected shape " +
                    c10::str(buffer.sizes()) + ")");
      if (stored.sizes() != buffer.sizes())
        throw Error(path + ": tensor '" + name + "' has shape " + c10::str(stored.sizes()) +
                    " but the model expects " + c10::str(buffer.sizes()));
      if (!stored.is_floating_point())
        throw Error(path + ": tensor '" + name + "' is not a floating-point tensor");
      buffer.copy_(stored.to(buffer.scalar_type()));
    }
  }
  if (used < file.tensors().size())
    log::debug(path + ": " + std::to_string(file.tensors().size() - used) + " tensors not used by " +
               what);
  net.to(device);
  net.eval();
  for (auto& p : net.parameters()) p.requires_grad_(false);
}

}  // namespace p2l::metrics
