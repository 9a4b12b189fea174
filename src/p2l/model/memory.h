// Refusing runs that cannot fit, before they start. An image size or a batch that is far too
// large would otherwise allocate until the kernel kills the process (24 GB, SIGKILL, for
// `p2l sample -W 100000 -H 100000`) instead of ending in one line.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "p2l/model/stable_diffusion.h"

namespace p2l::model {

// The largest side p2l samples or restores at: 16 384 pixels (32 times SD v1's 512).
constexpr int64_t kMaxImageSide = 16384;

// A lower bound on the memory one decoder pass of `batch` images of height × width needs: its
// first convolution's input and output at full resolution, in `dtype`. A run needs more (the
// weights, the UNet, the gradients); a run below this bound is never refused.
int64_t decoder_memory_lower_bound(const ModelConfig& config, int64_t batch, int64_t height,
                                   int64_t width, torch::ScalarType dtype);

// Memory the process can still take on the CPU (MemAvailable in /proc/meminfo); -1 if unknown.
int64_t available_host_memory();

// Throws p2l::Error naming the size when a side is beyond kMaxImageSide or, on the CPU, when the
// lower bound exceeds the memory available. `what` names the run, e.g. "sample".
void check_run_fits(const ModelConfig& config, int64_t batch, int64_t height, int64_t width,
                    torch::ScalarType dtype, const torch::Device& device, const std::string& what);

// "1.5 GiB", for messages.
std::string format_bytes(double bytes);

}  // namespace p2l::model
