// Checkpoints: reading and writing a model in either layout. Four units behind this header:
//  - checkpoint.cpp: detects the layout of a path (diffusers folder, or a single .safetensors or
//    PyTorch checkpoint file; io::WeightFile reads either format) and copies tensors into the
//    modules, converting F16/BF16 storage to the compute dtype and naming any missing or
//    mis-shaped tensor with its expected and found shape;
//  - weight_names.{h,cpp}: original ↔ diffusers names (the VAE attention's shapes included);
//  - config_inference.{h,cpp}: configurations from config.json, the original-layout YAML or the
//    tensor shapes, checked against the weights;
//  - checkpoint_writer.cpp: both layouts written, `p2l convert`.
#pragma once

#include <torch/torch.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "p2l/model/stable_diffusion.h"
#include "p2l/model/weight_names.h"

namespace p2l::model {

struct LoadOptions {
  // Single file: original-layout YAML (v1-inference.yaml format). Default: <name>.yaml beside
  // the file if present, else SD v1's head counts with channel counts from the tensor shapes.
  std::string config_yaml;
  // A folder with vocab.json + merges.txt. Default: the model's tokenizer/ folder, else the
  // CLIP vocabulary that p2l ships (data/clip-tokenizer).
  std::string tokenizer_dir;
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat;  // the text encoder's and the UNet's (--precision)
  // The autoencoder's (--vae-precision). Unset: float32 where `dtype` is a reduced precision (a
  // bf16 autoencoder costs 0.16 dB per restoration on the bundled model, bf16 networks around a
  // float32 one nothing measurable: docs/bench.md), else `dtype`.
  std::optional<torch::ScalarType> vae_dtype;
  torch::ScalarType autoencoder_dtype() const;
};

// Throws p2l::Error when the path is neither layout ("not a model").
Layout detect_layout(const std::string& path);

// What `p2l info` shows, read from the files' headers and configs alone (no weights are read and
// no network is built): configuration, layout, storage dtype, and the parameters of each
// component (the floating-point tensors stored for it).
struct ModelSummary {
  ModelConfig config;
  Layout layout = Layout::Diffusers;
  std::string source, storage_dtype;
  bool tokenizer = false;
  int64_t text_parameters = 0, unet_parameters = 0, vae_parameters = 0;
};
ModelSummary describe_model(const std::string& path, const LoadOptions& options = {});

StableDiffusion load_stable_diffusion(const std::string& path, const LoadOptions& options = {});

// Configuration of a single file: from the YAML when given, else from the tensor shapes with
// SD v1's head counts.
ModelConfig config_from_original_yaml(const std::string& yaml_path,
                                      const std::map<std::string, std::vector<int64_t>>& shapes);
ModelConfig config_from_shapes(const std::map<std::string, std::vector<int64_t>>& shapes);

// Copies named tensors into a module. `lookup` returns the stored tensor for an original-layout
// name (undefined if absent); `display` gives the stored name for messages. Throws p2l::Error
// naming the first missing or mis-shaped tensor.
using TensorLookup = std::function<torch::Tensor(const std::string& original)>;
void load_module_tensors(torch::nn::Module& module, const TensorLookup& lookup,
                         const std::function<std::string(const std::string&)>& display,
                         const std::string& source);

// One module's weights under its own (original-layout) names, e.g. a training stage's output.
void save_module_weights(torch::nn::Module& module, const std::string& path,
                         const std::map<std::string, std::string>& metadata = {});
void load_module_weights(torch::nn::Module& module, const std::string& path);

// Writers. `storage` is the dtype written (F32 or F16/BF16 to halve the size).
void save_diffusers(StableDiffusion& model, const std::string& dir,
                    torch::ScalarType storage = torch::kFloat,
                    const std::string& tokenizer_source_dir = "");
void save_single_file(StableDiffusion& model, const std::string& path,
                      torch::ScalarType storage = torch::kFloat);

// `p2l convert`: any model p2l reads (diffusers folder, single .safetensors or PyTorch
// checkpoint) written as one original-layout .safetensors file when `output` ends in
// .safetensors, else as a diffusers folder. Stored as F16 with `half`, else in the source's
// storage dtype when that is F32, F16 or BF16 throughout, else F32.
struct ConvertOptions {
  LoadOptions load;  // --config, --tokenizer
  bool half = false;
};
struct ConvertSummary {
  Layout layout = Layout::SingleFile;  // what was written
  std::string storage_dtype;           // e.g. "F32"
};
ConvertSummary convert_model(const std::string& input, const std::string& output,
                             const ConvertOptions& options = {});

// Folder of the data p2l ships (P2L_DATA environment variable, else the build's data/ folder).
std::string data_dir();

}  // namespace p2l::model
