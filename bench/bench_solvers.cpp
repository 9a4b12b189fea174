// Cost of each solver on the bundled model: wall time per step and network evaluations per
// step, for one measurement per task. Prints a markdown table. bench_methods splits the time by
// component and adds FLOPs and memory (docs/bench.md).
//   ./build/bench/bench_solvers [model=models/emoji-64] [steps=20] [threads=all]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "p2l/io/image.h"
#include "p2l/model/checkpoint.h"
#include "p2l/operators/measurement.h"
#include "p2l/operators/presets.h"
#include "p2l/solvers/solver.h"
#include "p2l/allocator.h"
#include "p2l/threads.h"

using namespace p2l;

int main(int argc, char** argv) {
  const bool reuse = p2l::reuse_freed_memory();
  const std::string model_dir = argc > 1 ? argv[1] : "models/emoji-64";
  const int64_t steps = argc > 2 ? std::atoll(argv[2]) : 20;
  const int threads = set_threads(argc > 3 ? std::atoi(argv[3]) : 0);
  auto sd = model::load_stable_diffusion(model_dir);
  auto x = io::load_image(model_dir + "/test_images/00_google.png");
  std::printf("model %s, %lld steps, %d threads, freed memory reused: %s\n\n", model_dir.c_str(),
              static_cast<long long>(steps), threads, reuse ? "yes" : "no (P2L_SYSTEM_MALLOC)");
  std::printf("| task | method | ms / step | UNet fwd+bwd / step | decoder fwd+bwd / step | "
              "encoder fwd+bwd / step |\n|---|---|---|---|---|---|\n");
  for (const std::string task : {"sr", "gauss-blur", "box-inpaint"}) {
    std::shared_ptr<const operators::Operator> op = operators::make_operator(
        operators::parse_task(task), operators::TaskParams::preset(operators::Preset::k64), 64,
        64, 0);
    auto m = operators::measure(x, op, operators::NoiseModel::gaussian(0.05), 0);
    for (const auto& method : solvers::method_names()) {
      auto solver = solvers::make_solver(method, solvers::Scale::kSmall, op->kind());
      solver->parameters().set("steps", static_cast<double>(steps));
      solvers::Problem p{&sd, op, m.y, 64, 64, 0, "", nullptr};
      const auto start = std::chrono::steady_clock::now();
      auto sol = solver->solve(p);
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      const auto& c = sol.counts;
      const double n = static_cast<double>(steps);
      std::printf("| %s | %s | %.1f | %.1f | %.1f | %.1f |\n", task.c_str(), method.c_str(),
                  ms / n, (c.unet_forward + c.unet_backward) / n,
                  (c.decoder_forward + c.decoder_backward) / n,
                  (c.encoder_forward + c.encoder_backward) / n);
    }
  }
}
