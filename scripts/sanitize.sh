#!/usr/bin/env bash
# The code that reads files from strangers, under AddressSanitizer and UndefinedBehaviorSanitizer:
# builds build-asan/ with -DP2L_SANITIZE=address,undefined (LibTorch stays as installed) and runs
# the parser, checkpoint, image, CLI-error and operator suites there (the only ones it builds).
# Any report fails the run.
# .ci/run calls it after the main suite. Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."

# -O1 with line tables: what the sanitizers need for exact reports, at half the compile time of
# -O2 -g (this build is a third of .ci/run's budget on 2 cores).
BUILD_DIR=build-asan ./scripts/build.sh -DP2L_SANITIZE=address,undefined \
  -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -g1" -DP2L_BUILD_BENCH=OFF

# The build holds and registers only the suites that read files from strangers
# (P2L_SANITIZED_SUITES in tests/CMakeLists.txt); each must be there, or it would silently not run.
listed=$(ctest --test-dir build-asan -N)
while IFS= read -r suite; do
  [[ -z $suite ]] && continue
  pattern=${suite//./\\.}
  pattern=${pattern//\*/.*}
  grep -qE "Test +#[0-9]+: ${pattern}( |\$)" <<<"$listed" ||
    { echo "sanitize.sh: no test in build-asan matches ${suite}" >&2; exit 1; }
done < build-asan/tests/sanitized_suites.txt

supp=$PWD/tests/sanitizers
# LibTorch's and OpenMP's own allocations that live until exit are not ours (lsan.supp); nothing
# of p2l's is suppressed.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_odr_violation=0
export LSAN_OPTIONS=suppressions=$supp/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-asan -j"$(nproc)" --output-on-failure "$@"
