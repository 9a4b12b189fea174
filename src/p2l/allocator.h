// Host memory: how freed tensor memory is kept for reuse.
#pragma once

namespace p2l {

// glibc's malloc serves each block over its mmap threshold (at most 32 MB) with a fresh mapping
// and unmaps it on free, so every large temporary — an activation, a 256×256 attention map per
// head — is paid again in page faults. On the 2-core development VM an allocating multiply of a
// 33 MB tensor took 73 ms, the same multiply in place 0.5 ms, and a UNet training step spent
// most of its time there (bench/bench_train_step). This serves every block from the heap and
// keeps freed memory for the next one instead of returning it to the kernel, as PyTorch's
// caching allocator does on a GPU. The cost is memory that stays with the process: glibc 2.36's
// posix_memalign (LibTorch aligns tensors to 64 bytes) does not refit a freed block of the same
// size at once, so a block allocated over and over takes several copies of fresh heap before
// reuse starts (9 for a lone 64 MiB block); measured on whole solves, peak RSS rose by 1–4 %
// (docs/bench.md). Call once at start-up, before the first large tensor; does nothing without
// glibc, or when P2L_SYSTEM_MALLOC is set (to measure the difference). Returns whether it
// changed anything.
bool reuse_freed_memory();

}  // namespace p2l
