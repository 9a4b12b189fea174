#include <gtest/gtest.h>

#include "p2l/allocator.h"
#include "p2l/threads.h"

int main(int argc, char** argv) {
  p2l::reuse_freed_memory();
  ::testing::InitGoogleTest(&argc, argv);
  // LibTorch starts with one intra-op thread here: OMP_NUM_THREADS (ctest sets 1, and runs a
  // test per core), else every core.
  p2l::set_threads();
  return RUN_ALL_TESTS();
}
