#include "p2l/threads.h"

#include <dlfcn.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

namespace p2l {

namespace {

// OMP_NUM_THREADS as OpenMP reads it (its first level, "4" of "4,2"), or 0 when unset or not a
// positive count. Several processes sharing the cores (a job scheduler, ctest -j) set it: libgomp
// spin-waits for threads that lost their core, which made a test 70x slower with 2 processes of 2
// threads on 2 cores.
int threads_from_environment() {
  const char* value = std::getenv("OMP_NUM_THREADS");
  if (!value) return 0;
  char* end = nullptr;
  const long n = std::strtol(value, &end, 10);
  if (end == value || (*end != '\0' && *end != ',') || n <= 0) return 0;
  const long cap = 4L * std::max(1u, std::thread::hardware_concurrency());
  return static_cast<int>(std::min(n, cap));
}

}  // namespace

int set_threads(int threads) {
  if (threads <= 0) threads = threads_from_environment();
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  // Looked up at run time: present with OpenBLAS, absent with MKL (official LibTorch builds),
  // where LibTorch already coordinates the BLAS threads itself.
  using SetThreads = void (*)(int);
  if (auto set_blas = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    set_blas(1);
  return threads;
}

}  // namespace p2l
