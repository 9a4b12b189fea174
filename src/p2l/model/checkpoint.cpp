// Loading: the layout of a path, the weight files of each component, the tensors into the
// modules, the tokenizer. Names are weight_names.cpp's, configurations config_inference.cpp's,
// the writers checkpoint_writer.cpp's.
#include "p2l/model/checkpoint.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <set>

#include "p2l/error.h"
#include "p2l/io/json_file.h"
#include "p2l/io/safetensors.h"
#include "p2l/io/weight_file.h"
#include "p2l/log.h"
#include "p2l/model/config_inference.h"

namespace p2l::model {

namespace fs = std::filesystem;

namespace {

std::string shape_str(at::IntArrayRef shape) { return c10::str(shape); }

std::string dtype_summary(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : "+") + n;
  return out;
}

std::shared_ptr<const ClipTokenizer> find_tokenizer(const std::string& model_tokenizer_dir,
                                                    int64_t vocab_size, const LoadOptions& options) {
  std::vector<std::string> candidates;
  if (!options.tokenizer_dir.empty()) {
    candidates.push_back(options.tokenizer_dir);
  } else {
    if (!model_tokenizer_dir.empty()) candidates.push_back(model_tokenizer_dir);
    candidates.push_back((fs::path(data_dir()) / "clip-tokenizer").string());
  }
  for (const auto& dir : candidates) {
    if (fs::exists(fs::path(dir) / "vocab.json") || !options.tokenizer_dir.empty()) {
      auto tokenizer = std::make_shared<const ClipTokenizer>(ClipTokenizer::from_directory(dir));
      // A token id beyond the text encoder's embedding table would end in LibTorch's "index out
      // of range in self" at the first prompt: a model without its own tokenizer/ whose
      // vocabulary is smaller than CLIP's.
      if (static_cast<int64_t>(tokenizer->vocab_size()) > vocab_size)
        throw Error(dir + ": the tokenizer has " + std::to_string(tokenizer->vocab_size()) +
                    " tokens, the text encoder " + std::to_string(vocab_size) +
                    (options.tokenizer_dir.empty() && dir != model_tokenizer_dir
                         ? " (the model has no tokenizer/ folder; give --tokenizer DIR)"
                         : ""));
      return tokenizer;
    }
  }
  log::warn("no tokenizer found: prompts cannot be encoded (pass --tokenizer DIR)");
  return nullptr;
}

void report_unused(const std::set<std::string>& available, const std::set<std::string>& used,
                   const std::string& source) {
  size_t unused = 0;
  for (const auto& key : available) {
    if (used.count(key)) continue;
    ++unused;
    log::debug(source + ": ignoring extra tensor '" + key + "'");
  }
  if (unused) log::debug(source + ": " + std::to_string(unused) + " extra tensors ignored");
}

// Finds the weight file of a diffusers component folder: safetensors first, as diffusers does,
// then the PyTorch checkpoint older folders hold (transformers calls model.safetensors'
// counterpart pytorch_model.bin).
std::string component_weights(const fs::path& folder, const std::string& stem) {
  const std::string bin = stem == "model" ? "pytorch_model" : stem;
  for (const auto& name :
       {stem + ".safetensors", stem + ".fp16.safetensors", bin + ".bin", bin + ".fp16.bin"}) {
    if (fs::exists(folder / name)) return (folder / name).string();
  }
  throw Error(folder.string() + ": no " + stem + ".safetensors or " + bin + ".bin");
}

}  // namespace

std::string data_dir() {
  if (const char* env = std::getenv("P2L_DATA")) return env;
#ifdef P2L_DATA_DIR
  return P2L_DATA_DIR;
#else
  return "data";
#endif
}

Layout detect_layout(const std::string& path) {
  const fs::path p(path);
  if (!fs::exists(p)) throw Error(path + ": no such file or folder");
  if (fs::is_directory(p)) {
    // model_index.json is what makes a folder a pipeline in diffusers too: without it, or with a
    // broken one, from_pretrained refuses the folder, so p2l does as well.
    const fs::path index = p / "model_index.json";
    if (!fs::exists(index))
      throw Error(path + ": not a model (a folder needs model_index.json and unet/, vae/, "
                  "text_encoder/ as diffusers writes them)");
    const auto j = io::read_json(index.string());
    if (!j.is_object() || !j.contains("_class_name") || !j["_class_name"].is_string())
      throw Error(index.string() + ": not a diffusers pipeline index (no \"_class_name\")");
    return Layout::Diffusers;
  }
  if (p.extension() == ".safetensors" || io::is_torch_checkpoint(path)) return Layout::SingleFile;
  throw Error(path +
              ": not a model (expected a diffusers folder, or a .safetensors, .ckpt, .pt, "
              ".pth or .bin file)");
}

void load_module_tensors(torch::nn::Module& module, const TensorLookup& lookup,
                         const std::function<std::string(const std::string&)>& display,
                         const std::string& source) {
  torch::NoGradGuard no_grad;
  std::vector<std::string> missing;
  for (auto& item : module.named_parameters(/*recurse=*/true)) {
    const auto& name = item.key();
    auto& param = item.value();
    auto stored = lookup(name);
    if (!stored.defined()) {
      missing.push_back(display(name) + " (expected shape " + shape_str(param.sizes()) + ")");
      continue;
    }
    auto fitted = fit_stored_shape(name, stored, param.sizes());
    if (!fitted.defined())
      throw Error(source + ": tensor '" + display(name) + "' has shape " +
                  shape_str(stored.sizes()) + " but the model expects " +
                  shape_str(param.sizes()));
    if (!fitted.is_floating_point())
      throw Error(source + ": tensor '" + display(name) + "' is not a floating-point tensor");
    param.copy_(fitted.to(param.device(), param.scalar_type()));
  }
  if (!missing.empty()) {
    std::string msg = source + ": missing tensor " + missing.front();
    if (missing.size() > 1) msg += " and " + std::to_string(missing.size() - 1) + " more";
    throw Error(msg);
  }
}

void load_module_weights(torch::nn::Module& module, const std::string& path) {
  const io::WeightFile file(path);
  load_module_tensors(
      module,
      [&](const std::string& name) -> torch::Tensor {
        return file.contains(name) ? file.load(name) : torch::Tensor();
      },
      [](const std::string& name) { return name; }, file.path());
}

namespace {

StableDiffusion load_diffusers(const fs::path& dir, const LoadOptions& options) {
  const ModelConfig config = diffusers_config(dir);
  std::map<Component, std::unique_ptr<io::WeightFile>> files;
  std::map<Component, Shapes> shapes;
  for (const auto& [component, stem] :
       {std::pair{Component::TextEncoder, "model"}, std::pair{Component::UNet, "diffusion_pytorch_model"},
        std::pair{Component::Vae, "diffusion_pytorch_model"}}) {
    files[component] = std::make_unique<io::WeightFile>(
        component_weights(dir / component_name(component), stem));
    for (const auto& info : files[component]->tensors()) shapes[component][info.name] = info.shape;
  }
  check_config_against_weights(config, dir, shapes);
  // Made in the computing type and moved to the device first: each stored tensor then goes
  // straight there (no float32 host copy of a bf16 GPU model).
  StableDiffusion sd = StableDiffusion::create(config, options.dtype, options.autoencoder_dtype());
  sd.to(options.device, options.dtype, options.autoencoder_dtype());
  sd.layout = Layout::Diffusers;
  sd.source = dir.string();
  std::set<std::string> dtypes;
  struct Part {
    Component component;
    torch::nn::Module* module;
  };
  const std::vector<Part> parts = {{Component::TextEncoder, sd.text_encoder.ptr().get()},
                                   {Component::UNet, sd.unet.ptr().get()},
                                   {Component::Vae, sd.vae.ptr().get()}};
  for (const auto& part : parts) {
    const io::WeightFile& file = *files.at(part.component);
    std::map<std::string, std::string> stored_name;  // normalised diffusers name → stored name
    std::set<std::string> available, used;
    for (const auto& info : file.tensors()) {
      stored_name[normalise_diffusers_name(part.component, info.name)] = info.name;
      available.insert(info.name);
      dtypes.insert(io::dtype_name(info.dtype));
    }
    auto to_stored = [&](const std::string& original) {
      const auto it = stored_name.find(diffusers_name(part.component, original, config));
      return it == stored_name.end() ? diffusers_name(part.component, original, config)
                                     : it->second;
    };
    load_module_tensors(
        *part.module,
        [&](const std::string& original) -> torch::Tensor {
          const auto it = stored_name.find(diffusers_name(part.component, original, config));
          if (it == stored_name.end()) return {};
          used.insert(it->second);
          return file.load(it->second);
        },
        to_stored, file.path());
    report_unused(available, used, file.path());
  }
  sd.storage_dtype = dtype_summary(dtypes);
  sd.tokenizer =
      find_tokenizer((dir / "tokenizer").string(), config.text.vocab_size, options);
  return sd;
}

StableDiffusion load_single_file(const fs::path& path, const LoadOptions& options) {
  const io::WeightFile file(path.string());
  Shapes shapes;
  std::set<std::string> dtypes, available, used;
  for (const auto& info : file.tensors()) {
    shapes[info.name] = info.shape;
    available.insert(info.name);
  }
  const ModelConfig config = single_file_config(path, shapes, options);
  // As load_diffusers.
  StableDiffusion sd = StableDiffusion::create(config, options.dtype, options.autoencoder_dtype());
  sd.to(options.device, options.dtype, options.autoencoder_dtype());
  sd.layout = Layout::SingleFile;
  sd.source = path.string();
  const std::string text = text_prefix(shapes);
  const std::vector<std::pair<std::string, torch::nn::Module*>> parts = {
      {text, sd.text_encoder.ptr().get()},
      {single_file_prefix(Component::UNet), sd.unet.ptr().get()},
      {single_file_prefix(Component::Vae), sd.vae.ptr().get()}};
  for (const auto& [prefix, module] : parts) {
    load_module_tensors(
        *module,
        [&, prefix = prefix](const std::string& original) -> torch::Tensor {
          const std::string key = prefix + original;
          if (!file.contains(key)) return {};
          used.insert(key);
          dtypes.insert(io::dtype_name(file.info(key).dtype));
          return file.load(key);
        },
        [prefix = prefix](const std::string& original) { return prefix + original; },
        file.path());
  }
  report_unused(available, used, file.path());
  sd.storage_dtype = dtype_summary(dtypes);
  sd.tokenizer = find_tokenizer("", config.text.vocab_size, options);
  return sd;
}

}  // namespace

ModelSummary describe_model(const std::string& path, const LoadOptions& options) {
  ModelSummary m;
  m.layout = detect_layout(path);
  m.source = path;
  std::set<std::string> dtypes;
  // Floating tensors only: the integer buffers some files carry (position_ids) are no weights.
  auto add = [&](const io::TensorInfo& info, int64_t& count) {
    if (!c10::isFloatingType(io::to_torch(info.dtype))) return;
    int64_t n = 1;
    for (const auto d : info.shape) n *= d;
    count += n;
    dtypes.insert(io::dtype_name(info.dtype));
  };
  if (m.layout == Layout::Diffusers) {
    const fs::path dir(path);
    m.config = diffusers_config(dir);
    const std::vector<std::tuple<Component, const char*, int64_t*>> parts = {
        {Component::TextEncoder, "model", &m.text_parameters},
        {Component::UNet, "diffusion_pytorch_model", &m.unet_parameters},
        {Component::Vae, "diffusion_pytorch_model", &m.vae_parameters}};
    for (const auto& [component, stem, count] : parts) {
      const io::WeightFile file(component_weights(dir / component_name(component), stem));
      for (const auto& info : file.tensors()) add(info, *count);
    }
    m.tokenizer = fs::exists(dir / "tokenizer" / "vocab.json") ||
                  fs::exists(fs::path(data_dir()) / "clip-tokenizer" / "vocab.json");
  } else {
    const io::WeightFile file(path);
    Shapes shapes;
    for (const auto& info : file.tensors()) shapes[info.name] = info.shape;
    m.config = single_file_config(fs::path(path), shapes, options);
    const auto text = text_prefix(shapes);
    for (const auto& info : file.tensors()) {
      if (starts_with(info.name, text))
        add(info, m.text_parameters);
      else if (starts_with(info.name, single_file_prefix(Component::UNet)))
        add(info, m.unet_parameters);
      else if (starts_with(info.name, single_file_prefix(Component::Vae)))
        add(info, m.vae_parameters);
    }
    m.tokenizer = fs::exists(fs::path(data_dir()) / "clip-tokenizer" / "vocab.json");
  }
  m.storage_dtype = dtype_summary(dtypes);
  return m;
}

torch::ScalarType LoadOptions::autoencoder_dtype() const {
  if (vae_dtype) return *vae_dtype;
  return dtype == torch::kBFloat16 || dtype == torch::kHalf ? torch::kFloat : dtype;
}

StableDiffusion load_stable_diffusion(const std::string& path, const LoadOptions& options) {
  StableDiffusion sd = detect_layout(path) == Layout::Diffusers
                           ? load_diffusers(fs::path(path), options)
                           : load_single_file(fs::path(path), options);
  sd.to(options.device, options.dtype, options.autoencoder_dtype());
  sd.eval();
  return sd;
}

}  // namespace p2l::model
