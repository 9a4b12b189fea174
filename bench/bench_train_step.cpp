// Time of one training step of the shipped emoji model's UNet + text encoder, split by phase,
// with and without channels-last, and of the UNet with cross-attention at every level (the
// --unet-attention 1,1,1 experiment); the channels-last step is profiled.
//   ./build/bench/bench_train_step [batch] [threads]
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "p2l/model/stable_diffusion.h"
#include "p2l/allocator.h"
#include "p2l/threads.h"
#include "p2l/train/trainers.h"

using namespace p2l;
using Clock = std::chrono::steady_clock;

namespace {
double since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

void run(bool channels_last, int64_t batch, bool profile,
         std::vector<bool> attention = {false, true, true}) {
  torch::manual_seed(0);
  const std::string levels = std::string(attention[0] ? "1" : "0") + (attention[1] ? "1" : "0") +
                             (attention[2] ? "1" : "0");
  model::UNet unet(train::emoji_unet_config(64, std::move(attention)));
  model::ClipTextModel text(train::emoji_text_config(2014));
  if (channels_last) model::use_channels_last(*unet);
  std::vector<torch::Tensor> params = unet->parameters();
  for (const auto& p : text->parameters()) params.push_back(p);
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(1e-3));
  auto z = torch::randn({batch, 4, 16, 16});
  if (channels_last) z = z.contiguous(at::MemoryFormat::ChannelsLast);
  auto t = torch::randint(1000, {batch}, torch::kLong);
  auto ids = torch::randint(2014, {batch, 77}, torch::kLong);
  double f = 0, b = 0, o = 0;
  const int warm = 2, reps = 6;
  for (int i = 0; i < warm + reps; ++i) {
    auto t0 = Clock::now();
    auto context = text->forward(ids).last_hidden_state;
    auto loss = (unet->forward(z, t, context) - z).pow(2).mean();
    const double tf = since(t0);
    t0 = Clock::now();
    opt.zero_grad();
    loss.backward();
    const double tb = since(t0);
    t0 = Clock::now();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    opt.step();
    const double to = since(t0);
    if (i >= warm) f += tf, b += tb, o += to;
  }
  std::printf("attention=%s channels_last=%d batch=%lld  forward %.1f ms  backward %.1f ms"
              "  optimizer %.1f ms  total %.1f ms\n",
              levels.c_str(), channels_last, static_cast<long long>(batch), f / reps, b / reps, o / reps,
              (f + b + o) / reps);
  if (profile) {
    torch::autograd::profiler::RecordProfile guard("/tmp/train_step_trace.json");
    auto context = text->forward(ids).last_hidden_state;
    auto loss = (unet->forward(z, t, context) - z).pow(2).mean();
    opt.zero_grad();
    loss.backward();
  }
}
}  // namespace

int main(int argc, char** argv) {
  const bool reuse = p2l::reuse_freed_memory();
  const int64_t batch = argc > 1 ? std::atoll(argv[1]) : 32;
  const int threads = p2l::set_threads(argc > 2 ? std::atoi(argv[2]) : 0);
  std::printf("threads %d, freed memory reused: %s\n", threads,
              reuse ? "yes" : "no (P2L_SYSTEM_MALLOC)");
  run(false, batch, false);
  run(true, batch, true);
  run(false, batch, false, {true, true, true});
}
