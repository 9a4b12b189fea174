// Writing: a model in the diffusers layout or as one original-layout file, a module's own
// weights, and `p2l convert`.
#include "p2l/model/checkpoint.h"

#include <nlohmann/json.hpp>

#include <filesystem>

#include "p2l/error.h"
#include "p2l/io/json_file.h"
#include "p2l/io/safetensors.h"

namespace p2l::model {

namespace fs = std::filesystem;

namespace {

// Named tensors of a component in the given layout, in the dtype to store.
std::vector<std::pair<std::string, torch::Tensor>> component_tensors(
    torch::nn::Module& module, Component component, const ModelConfig& config, bool diffusers,
    torch::ScalarType storage) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : module.named_parameters(true)) {
    auto t = item.value().detach().to(torch::kCPU, storage).contiguous();
    std::string name;
    if (diffusers) {
      name = diffusers_name(component, item.key(), config);
      if (is_vae_attention(item.key()) && t.dim() == 4) t = t.flatten(1);  // [C,C,1,1] → [C,C]
    } else {
      name = single_file_prefix(component) + item.key();
    }
    out.emplace_back(name, t);
  }
  return out;
}

}  // namespace

void save_module_weights(torch::nn::Module& module, const std::string& path,
                         const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& item : module.named_parameters(true))
    tensors.emplace_back(item.key(), item.value().detach().to(torch::kCPU).contiguous());
  io::save_safetensors(path, tensors, metadata);
}

void save_diffusers(StableDiffusion& model, const std::string& dir_path, torch::ScalarType storage,
                    const std::string& tokenizer_source_dir) {
  const fs::path dir(dir_path);
  const auto& c = model.config;
  for (const char* sub : {"unet", "vae", "text_encoder", "scheduler"})
    fs::create_directories(dir / sub);

  auto unet = c.unet.to_json();
  unet["_class_name"] = "UNet2DConditionModel";
  io::write_json((dir / "unet" / "config.json").string(), unet);
  io::save_safetensors((dir / "unet" / "diffusion_pytorch_model.safetensors").string(),
                       component_tensors(*model.unet, Component::UNet, c, true, storage));

  auto vae = c.vae.to_json();
  vae["_class_name"] = "AutoencoderKL";
  io::write_json((dir / "vae" / "config.json").string(), vae);
  io::save_safetensors((dir / "vae" / "diffusion_pytorch_model.safetensors").string(),
                       component_tensors(*model.vae, Component::Vae, c, true, storage));

  auto text = c.text.to_json();
  text["architectures"] = {"CLIPTextModel"};
  text["model_type"] = "clip_text_model";
  io::write_json((dir / "text_encoder" / "config.json").string(), text);
  io::save_safetensors(
      (dir / "text_encoder" / "model.safetensors").string(),
      component_tensors(*model.text_encoder, Component::TextEncoder, c, true, storage));

  io::write_json((dir / "scheduler" / "scheduler_config.json").string(), c.schedule.to_json());
  nlohmann::json index = {{"_class_name", "StableDiffusionPipeline"},
                          {"scheduler", {"diffusers", "DDIMScheduler"}},
                          {"text_encoder", {"transformers", "CLIPTextModel"}},
                          {"tokenizer", {"transformers", "CLIPTokenizer"}},
                          {"unet", {"diffusers", "UNet2DConditionModel"}},
                          {"vae", {"diffusers", "AutoencoderKL"}},
                          {"safety_checker", {nullptr, nullptr}},
                          {"feature_extractor", {nullptr, nullptr}},
                          {"requires_safety_checker", false}};
  io::write_json((dir / "model_index.json").string(), index);
  if (!tokenizer_source_dir.empty()) {
    fs::create_directories(dir / "tokenizer");
    for (const char* name : {"vocab.json", "merges.txt"})
      if (!fs::exists(dir / "tokenizer" / name) ||
          !fs::equivalent(fs::path(tokenizer_source_dir) / name, dir / "tokenizer" / name))
        fs::copy_file(fs::path(tokenizer_source_dir) / name, dir / "tokenizer" / name,
                    fs::copy_options::overwrite_existing);
  }
}

void save_single_file(StableDiffusion& model, const std::string& path, torch::ScalarType storage) {
  std::vector<std::pair<std::string, torch::Tensor>> all;
  const auto& c = model.config;
  for (auto [component, module] :
       std::vector<std::pair<Component, torch::nn::Module*>>{
           {Component::TextEncoder, model.text_encoder.ptr().get()},
           {Component::UNet, model.unet.ptr().get()},
           {Component::Vae, model.vae.ptr().get()}}) {
    auto part = component_tensors(*module, component, c, false, storage);
    all.insert(all.end(), part.begin(), part.end());
  }
  io::save_safetensors(path, all, {{"format", "pt"}});
}

ConvertSummary convert_model(const std::string& input, const std::string& output,
                             const ConvertOptions& options) {
  const fs::path out(output);
  const bool single = out.extension() == ".safetensors";
  if (!single && out.has_extension() && !fs::is_directory(out))
    throw Error(output + ": convert writes a .safetensors file or a diffusers folder (DIR/)");
  if (fs::exists(out) && fs::exists(input) && fs::equivalent(out, input))
    throw Error(output + ": the output is the input");
  ConvertOptions o = options;
  o.load.device = torch::kCPU;
  o.load.dtype = torch::kFloat;  // F16/BF16 → F32 → F16/BF16 is exact
  StableDiffusion sd = load_stable_diffusion(input, o.load);

  ConvertSummary summary;
  summary.layout = single ? Layout::SingleFile : Layout::Diffusers;
  torch::ScalarType storage = torch::kFloat;
  if (o.half || sd.storage_dtype == "F16")
    storage = torch::kHalf;
  else if (sd.storage_dtype == "BF16")
    storage = torch::kBFloat16;
  summary.storage_dtype = io::dtype_name(io::from_torch(storage));
  if (single) {
    if (out.has_parent_path()) fs::create_directories(out.parent_path());
    save_single_file(sd, output, storage);
    return summary;
  }
  // The tokenizer goes along: the input folder's, --tokenizer, else the one p2l ships.
  std::string tokenizer = o.load.tokenizer_dir;
  const fs::path own = fs::path(input) / "tokenizer";
  if (tokenizer.empty() && fs::exists(own / "vocab.json")) tokenizer = own.string();
  const fs::path shipped = fs::path(data_dir()) / "clip-tokenizer";
  if (tokenizer.empty() && fs::exists(shipped / "vocab.json")) tokenizer = shipped.string();
  save_diffusers(sd, output, storage, tokenizer);
  return summary;
}

}  // namespace p2l::model
