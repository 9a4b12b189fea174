// reuse_freed_memory (called by test_main, as by every p2l binary): a large tensor that is freed
// and allocated again, as every diffusion step does, comes back without page faults.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdlib>

#include "p2l/allocator.h"

namespace {

long minor_page_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

constexpr int64_t kBytes = int64_t{64} << 20;  // over glibc's largest mmap threshold (32 MiB)

// Page faults while a 64 MiB tensor is allocated, written and freed.
long faults_of_a_large_tensor() {
  const long before = minor_page_faults();
  {
    auto t = torch::empty({kBytes / 4});
    t.fill_(1.0f);
  }
  return minor_page_faults() - before;
}

}  // namespace

TEST(Allocator, AFreedLargeTensorIsReusedWithoutPageFaults) {
#if !defined(__GLIBC__)
  GTEST_SKIP() << "the allocator set-up is for glibc";
#endif
  if (std::getenv("P2L_SYSTEM_MALLOC")) GTEST_SKIP() << "P2L_SYSTEM_MALLOC is set";
  // The heap grows to hold it: glibc 2.36's posix_memalign (LibTorch aligns to 64 bytes) takes
  // fresh memory for the first 9 rounds here before a freed block fits (src/p2l/allocator.h).
  for (int round = 0; round < 30; ++round) faults_of_a_large_tensor();
  const long pages = kBytes / sysconf(_SC_PAGESIZE);
  // glibc's default maps and unmaps such a block every time: one fault per page, 16384 here.
  long faults = 0;
  for (int round = 0; round < 10; ++round) faults += faults_of_a_large_tensor();
  EXPECT_LT(faults, pages / 100);
}
