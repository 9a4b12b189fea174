// The metric networks' weights (LPIPS, the FID Inception, FD-emoji): read from a safetensors
// file by the network's own tensor names, then frozen — on the device, in evaluation mode, no
// gradients. One loader, so that every metric network checks its file the same way.
#pragma once

#include <torch/torch.h>

#include <string>

#include "p2l/io/safetensors.h"

namespace p2l::metrics {

enum class Buffers {
  kKeep,  // as the network builds them (constants such as LPIPS's scaling layer)
  kLoad,  // from the file too (batch-norm statistics; num_batches_tracked may be absent)
};

// Throws p2l::Error naming the file and the tensor for a missing tensor, a wrong shape or a
// non-floating-point one. Tensors of the file the network does not use are logged (debug) with
// `what`, the network's name.
void load_frozen(torch::nn::Module& net, const io::SafeTensorsFile& file, torch::Device device,
                 const std::string& what, Buffers buffers = Buffers::kKeep);

}  // namespace p2l::metrics
