#include <gtest/gtest.h>

#include "p2l/threads.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  p2l::set_threads();  // LibTorch starts with one intra-op thread here; use the machine
  return RUN_ALL_TESTS();
}
