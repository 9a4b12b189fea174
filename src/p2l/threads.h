// CPU threading: one place that decides how many threads p2l's tensor work uses.
#pragma once

namespace p2l {

// Sets LibTorch's intra-op threads (0 = OMP_NUM_THREADS when it is a positive count, else every
// core) and pins the BLAS library's own thread pool
// to one thread. Debian's LibTorch calls OpenBLAS (pthreads build) for matrix products; its
// threads and LibTorch's OpenMP threads then compete for the same cores, which made a training
// step of the emoji UNet 2.5× slower on 2 cores (bench/bench_train_step). Returns the count used.
int set_threads(int threads = 0);

}  // namespace p2l
