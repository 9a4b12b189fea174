// Pieces every training stage shares: an exponential moving average of a module's weights,
// and crash-safe checkpoints of the whole training state (weights, EMA, optimiser, step).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace p2l::train {

// EMA weights live in a second module of the same structure (so they can be saved, loaded and
// evaluated like the model itself).
void ema_update(torch::nn::Module& ema, const torch::nn::Module& model, double decay);
void copy_parameters(torch::nn::Module& to, const torch::nn::Module& from);

// Saves modules + optimiser + step to `path` (written to a temporary file, then renamed).
void save_training_state(const std::string& path, int64_t step,
                         const std::vector<std::pair<std::string, torch::nn::Module*>>& modules,
                         torch::optim::Optimizer& optimizer);
// Loads what save_training_state wrote onto the device the modules are on (a checkpoint saved
// on one device resumes on another); returns the step. Throws p2l::Error naming the file.
int64_t load_training_state(const std::string& path,
                            const std::vector<std::pair<std::string, torch::nn::Module*>>& modules,
                            torch::optim::Optimizer& optimizer);

// Cosine decay from lr to lr·final_fraction over `total` steps, after a linear warm-up.
double cosine_lr(double lr, int64_t step, int64_t total, int64_t warmup, double final_fraction);
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

// The random stream of one training step, drawn from (seed, step) alone: a resumed run draws
// what the uninterrupted run would have.
uint64_t step_seed(uint64_t seed, int64_t step);
at::Generator step_generator(uint64_t seed, int64_t step);

}  // namespace p2l::train
