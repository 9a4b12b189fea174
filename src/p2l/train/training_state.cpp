#include "p2l/train/training_state.h"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "p2l/error.h"

namespace p2l::train {

void ema_update(torch::nn::Module& ema, const torch::nn::Module& model, double decay) {
  torch::NoGradGuard no_grad;
  auto target = ema.parameters();
  const auto source = model.parameters();
  for (size_t i = 0; i < target.size(); ++i) target[i].mul_(decay).add_(source[i], 1 - decay);
}

void copy_parameters(torch::nn::Module& to, const torch::nn::Module& from) {
  torch::NoGradGuard no_grad;
  auto target = to.parameters();
  const auto source = from.parameters();
  for (size_t i = 0; i < target.size(); ++i) target[i].copy_(source[i]);
}

void save_training_state(const std::string& path, int64_t step,
                         const std::vector<std::pair<std::string, torch::nn::Module*>>& modules,
                         torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  archive.write("step", torch::tensor(step));
  for (const auto& [name, module] : modules) {
    torch::serialize::OutputArchive sub;
    module->save(sub);
    archive.write(name, sub);
  }
  torch::serialize::OutputArchive opt;
  optimizer.save(opt);
  archive.write("optimizer", opt);
  const std::string tmp = path + ".tmp";
  archive.save_to(tmp);
  std::filesystem::rename(tmp, path);
}

int64_t load_training_state(const std::string& path,
                            const std::vector<std::pair<std::string, torch::nn::Module*>>& modules,
                            torch::optim::Optimizer& optimizer) {
  try {
    // Mapped onto the modules' device: a tensor read onto another device than its parameter's
    // would move the parameter there, away from the optimiser.
    const auto device = modules.front().second->parameters().front().device();
    torch::serialize::InputArchive archive;
    archive.load_from(path, device);
    torch::Tensor step;
    archive.read("step", step);
    for (const auto& [name, module] : modules) {
      torch::serialize::InputArchive sub;
      archive.read(name, sub);
      module->load(sub);
    }
    torch::serialize::InputArchive opt;
    archive.read("optimizer", opt);
    optimizer.load(opt);
    return step.item<int64_t>();
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    throw Error(path + ": cannot resume from this checkpoint (" + msg.substr(0, msg.find('\n')) +
                ")");
  }
}

double cosine_lr(double lr, int64_t step, int64_t total, int64_t warmup, double final_fraction) {
  if (step < warmup) return lr * (step + 1) / static_cast<double>(warmup);
  const double progress =
      std::min(1.0, (step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup)));
  const double cosine = 0.5 * (1 + std::cos(M_PI * progress));
  return lr * (final_fraction + (1 - final_fraction) * cosine);
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

uint64_t step_seed(uint64_t seed, int64_t step) {
  return seed * 1000003ull + static_cast<uint64_t>(step) + 1;
}

at::Generator step_generator(uint64_t seed, int64_t step) {
  return at::detail::createCPUGenerator(step_seed(seed, step));
}

}  // namespace p2l::train
