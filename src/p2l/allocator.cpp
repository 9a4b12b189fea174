#include "p2l/allocator.h"

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace p2l {

bool reuse_freed_memory() {
  if (std::getenv("P2L_SYSTEM_MALLOC")) return false;
#if defined(__GLIBC__)
  // No mmap-backed blocks, and never trim the heap's free top back to the kernel.
  return mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, -1) == 1;
#else
  return false;
#endif
}

}  // namespace p2l
