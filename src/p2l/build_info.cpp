#include "p2l/build_info.h"

#include <ATen/Version.h>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <sstream>

#include "p2l/model/attention.h"
#include "p2l/model/precision.h"

namespace p2l {
namespace {

// The line of LibTorch's build configuration that starts with `key` ("CUDA Runtime 13.0"),
// without the key; "" when absent.
std::string config_entry(const std::string& config, const std::string& key) {
  std::istringstream in(config);
  for (std::string line; std::getline(in, line);) {
    const auto at = line.find(key);
    if (at != std::string::npos) return line.substr(at + key.size() + 1);
  }
  return "";
}

std::string precisions(const torch::Device& device) {
  std::string out;
  for (auto p : {model::Precision::kFloat32, model::Precision::kBFloat16,
                 model::Precision::kFloat16}) {
    try {
      model::check_precision_supported(p, device);
      out += (out.empty() ? "" : ", ") + model::precision_name(p);
    } catch (const std::exception&) {
    }
  }
  return out;
}

}  // namespace

std::string build_info() {
  std::ostringstream o;
  o << "p2l 0.1.0\nLibTorch " << TORCH_VERSION << "\n";
  const auto config = at::show_config();
  if (torch::cuda::is_available()) {
    const auto runtime = config_entry(config, "CUDA Runtime");
    const auto cudnn = config_entry(config, "CuDNN");
    o << "CUDA " << (runtime.empty() ? "yes" : runtime) << ", " << torch::cuda::device_count()
      << " device(s); cuDNN " << (cudnn.empty() ? "no" : cudnn) << "\n";
  } else {
    o << "CUDA: none (CPU only)\n";
  }
  o << "attention: " << model::attention_path() << "\n";
  o << "precisions (--precision): cpu " << precisions(torch::kCPU);
  if (torch::cuda::is_available()) o << "; cuda " << precisions(torch::Device(torch::kCUDA, 0));
  o << "\n";
  return o.str();
}

}  // namespace p2l
