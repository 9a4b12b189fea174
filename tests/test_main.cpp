#include <gtest/gtest.h>

#include <cstdlib>

#include "p2l/allocator.h"
#include "p2l/threads.h"

int main(int argc, char** argv) {
  p2l::reuse_freed_memory();
  ::testing::InitGoogleTest(&argc, argv);
  // LibTorch starts with one intra-op thread here: use the machine, or OMP_NUM_THREADS when set
  // (ctest sets it; on a busy machine one thread per test process is much faster).
  const char* omp = std::getenv("OMP_NUM_THREADS");
  p2l::set_threads(omp ? std::atoi(omp) : 0);
  return RUN_ALL_TESTS();
}
