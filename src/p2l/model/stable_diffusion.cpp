#include "p2l/model/stable_diffusion.h"

#include "p2l/error.h"

namespace p2l::model {

std::string layout_name(Layout layout) {
  return layout == Layout::Diffusers ? "diffusers folder" : "single file (original layout)";
}

namespace {

// LibTorch's modules make their parameters in the default dtype; this sets it for a scope.
class DefaultDtype {
 public:
  explicit DefaultDtype(torch::ScalarType type) : previous_(torch::get_default_dtype()) {
    torch::set_default_dtype(c10::scalarTypeToTypeMeta(type));
  }
  ~DefaultDtype() { torch::set_default_dtype(previous_); }
  DefaultDtype(const DefaultDtype&) = delete;
  DefaultDtype& operator=(const DefaultDtype&) = delete;

 private:
  caffe2::TypeMeta previous_;
};

}  // namespace

StableDiffusion StableDiffusion::create(const ModelConfig& config, torch::ScalarType dtype,
                                        std::optional<torch::ScalarType> vae_dtype) {
  StableDiffusion sd;
  sd.config = config;
  // Built straight in the type they will compute in: a bf16 model never has a float32 copy.
  {
    DefaultDtype scope(dtype);
    sd.text_encoder = ClipTextModel(config.text);
    sd.unet = UNet(config.unet);
  }
  {
    DefaultDtype scope(vae_dtype.value_or(dtype));
    sd.vae = AutoencoderKL(config.vae);
  }
  sd.schedule = std::make_shared<diffusion::NoiseSchedule>(config.schedule);
  sd.storage_dtype = "F32";
  sd.eval();
  return sd;
}

torch::Device StableDiffusion::device() const { return unet->parameters().front().device(); }

torch::ScalarType StableDiffusion::dtype() const {
  return unet->parameters().front().scalar_type();
}

torch::ScalarType StableDiffusion::vae_dtype() const {
  return vae->parameters().front().scalar_type();
}

torch::ScalarType StableDiffusion::arithmetic_dtype() const {
  return dtype() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

void StableDiffusion::to(torch::Device device, torch::ScalarType dtype,
                         std::optional<torch::ScalarType> vae_dtype) {
  text_encoder->to(device, dtype);
  unet->to(device, dtype);
  vae->to(device, vae_dtype.value_or(dtype));
}

void StableDiffusion::eval() {
  text_encoder->eval();
  unet->eval();
  vae->eval();
}

torch::Tensor StableDiffusion::encode_tokens(const torch::Tensor& ids) {
  return text_encoder->forward(ids.to(device())).last_hidden_state.to(arithmetic_dtype());
}

torch::Tensor StableDiffusion::predict_noise(const torch::Tensor& z_t,
                                             const torch::Tensor& timesteps,
                                             const torch::Tensor& text) {
  const auto type = dtype();
  return unet->forward(z_t.to(type), timesteps.to(z_t.device()), text.to(type))
      .to(z_t.scalar_type());
}

torch::Tensor StableDiffusion::decode(const torch::Tensor& z) {
  return vae->decode_scaled(z.to(vae_dtype())).to(z.scalar_type());
}

torch::Tensor StableDiffusion::encode(const torch::Tensor& x) {
  return vae->encode_mean(x.to(vae_dtype())).to(x.scalar_type());
}

torch::Tensor StableDiffusion::encode_prompts(const std::vector<std::string>& prompts) {
  if (!tokenizer) throw Error("this model has no tokenizer: pass one with --tokenizer");
  return encode_tokens(tokenizer->tokenize_batch(prompts, config.text.max_positions));
}

void use_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.data().contiguous(at::MemoryFormat::ChannelsLast));
}

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace p2l::model
