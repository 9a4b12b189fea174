#include "p2l/model/memory.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "p2l/error.h"

namespace p2l::model {

int64_t decoder_memory_lower_bound(const ModelConfig& config, int64_t batch, int64_t height,
                                   int64_t width, torch::ScalarType dtype) {
  const auto& channels = config.vae.block_out_channels;
  const double elements = static_cast<double>(batch) * static_cast<double>(height) *
                          static_cast<double>(width) *
                          static_cast<double>(channels.empty() ? 1 : channels.front());
  const double bytes = 2.0 * elements * static_cast<double>(c10::elementSize(dtype));
  return bytes > 9.0e18 ? INT64_MAX : static_cast<int64_t>(bytes);
}

int64_t available_host_memory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    long long kib = 0;
    if (std::sscanf(line.c_str(), "MemAvailable: %lld kB", &kib) == 1) return kib * 1024;
  }
  return -1;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 6) {
    bytes /= 1024;
    ++unit;
  }
  std::ostringstream out;
  out.precision(bytes < 10 ? 2 : 3);
  out << bytes << " " << units[unit];
  return out.str();
}

void check_run_fits(const ModelConfig& config, int64_t batch, int64_t height, int64_t width,
                    torch::ScalarType dtype, const torch::Device& device, const std::string& what) {
  const std::string size = std::to_string(width) + "x" + std::to_string(height);
  if (width > kMaxImageSide || height > kMaxImageSide)
    throw Error(what + ": image size " + size + " is beyond p2l's limit of " +
                std::to_string(kMaxImageSide) + " pixels a side");
  if (!device.is_cpu()) return;  // a GPU's own allocator reports what it cannot hold
  const int64_t need = decoder_memory_lower_bound(config, batch, height, width, dtype);
  const int64_t available = available_host_memory();
  if (available > 0 && need > available)
    throw Error(what + ": " + std::to_string(batch) + " image(s) of " + size + " need more than " +
                format_bytes(static_cast<double>(need)) + " for the decoder alone; " +
                format_bytes(static_cast<double>(available)) + " of memory are available");
}

}  // namespace p2l::model
