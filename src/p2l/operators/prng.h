// p2l's own pseudo-random generator for everything a measurement file must be able to reproduce:
// inpainting masks, box positions, motion-blur kernels and measurement noise. torch's generators
// are not guaranteed to give the same stream across versions and devices, and the standard
// library's distributions are implementation-defined, so p2l uses SplitMix64 (Steele, Lea and
// Flood 2014; public-domain reference) with distributions written out here. Integer draws are
// bit-exact on every machine; real-valued draws use std::log / std::sqrt / std::cos in double
// and are therefore identical wherever libm rounds those correctly (glibc does to < 1 ulp, which
// vanishes when the result is rounded to float32).
#pragma once

#include <cstdint>
#include <string_view>

namespace p2l::operators {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t next_u64();
  // Uniform in [0, 1) with 53 random bits.
  double uniform();
  double uniform(double low, double high) { return low + (high - low) * uniform(); }
  // Uniform integer in [0, n), unbiased (rejection of the short last block); n ≥ 1.
  uint64_t below(uint64_t n);
  // Standard normal by Box–Muller; the second value of each pair is kept for the next call.
  double normal();
  // Poisson(mean): multiplication method below 10, Hörmann's PTRS rejection above.
  int64_t poisson(double mean);

 private:
  uint64_t state_;
  bool has_spare_normal_ = false;
  double spare_normal_ = 0.0;
};

// An independent seed for one named use of a user seed ("noise", "mask", ...), so that changing
// how many numbers one stream draws never shifts another.
uint64_t derive_seed(uint64_t seed, std::string_view stream);

}  // namespace p2l::operators
