#include "p2l/model/precision.h"

#include "p2l/error.h"
#include "p2l/model/checkpoint.h"

namespace p2l::model {

Precision parse_precision(const std::string& name, const std::string& flag) {
  if (name == "fp32" || name == "float32") return Precision::kFloat32;
  if (name == "bf16" || name == "bfloat16") return Precision::kBFloat16;
  if (name == "fp16" || name == "float16") return Precision::kFloat16;
  throw Error(flag + ": unknown precision '" + name + "' (use fp32, bf16 or fp16)");
}

std::string precision_name(Precision precision) {
  switch (precision) {
    case Precision::kFloat32: return "fp32";
    case Precision::kBFloat16: return "bf16";
    case Precision::kFloat16: return "fp16";
  }
  return "fp32";
}

torch::ScalarType scalar_type(Precision precision) {
  switch (precision) {
    case Precision::kFloat32: return torch::kFloat;
    case Precision::kBFloat16: return torch::kBFloat16;
    case Precision::kFloat16: return torch::kHalf;
  }
  return torch::kFloat;
}

Precision precision_of(torch::ScalarType type) {
  if (type == torch::kBFloat16) return Precision::kBFloat16;
  if (type == torch::kHalf) return Precision::kFloat16;
  return Precision::kFloat32;
}

void check_precision_supported(Precision precision, const torch::Device& device,
                               const std::string& flag) {
  if (precision == Precision::kFloat32) return;
  if (precision == Precision::kFloat16 && !device.is_cuda())
    throw Error(flag + " fp16 needs a CUDA device (--device cuda); on the CPU use bf16 or fp32");
  // A small convolution and group norm, forward and backward, as the solvers run them: a device
  // without the type's kernels fails here, with one line, not in the middle of a run.
  try {
    torch::AutoGradMode grad(true);  // the backward pass, also from inside a no-grad scope
    const auto options = torch::TensorOptions().dtype(scalar_type(precision)).device(device);
    auto x = torch::ones({1, 4, 8, 8}, options).requires_grad_(true);
    auto w = torch::ones({4, 4, 3, 3}, options);
    auto y = torch::group_norm(torch::conv2d(x, w, {}, 1, 1), 2);
    y.sum().backward();
  } catch (const std::exception&) {
    throw Error(flag + " " + precision_name(precision) + ": the device " + device.str() +
                " cannot compute in this precision with this LibTorch; use fp32");
  }
}

void set_precisions(LoadOptions& load, const std::string& precision,
                    const std::string& vae_precision, const std::string& flag,
                    const std::string& vae_flag) {
  const auto networks = parse_precision(precision, flag);
  const auto autoencoder = parse_precision(vae_precision, vae_flag);
  check_precision_supported(networks, load.device, flag);
  check_precision_supported(autoencoder, load.device, vae_flag);
  load.dtype = scalar_type(networks);
  load.vae_dtype = scalar_type(autoencoder);
}

}  // namespace p2l::model
