#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one pass: builds p2l against a CUDA build of LibTorch 2.x
# (by default the one inside the machine's Python PyTorch), then
#   1. the test suite (the CUDA operator test runs instead of skipping), first the CUDA test alone;
#   2. `p2l eval --device cuda` on the images in IMAGES (all tasks × methods, 4 processes sharing
#      the GPU), whose results.jsonl can be compared job by job with a CPU run of the same images
#      (seeds derive from the file name and the task, and noise is drawn on the CPU);
#   3. bench/bench_methods --device cuda on the bundled model and on SD v1's configuration.
# Logs and results go to OUT (default runs/gpu-check). Every phase has a time limit, so a slow or
# broken phase still leaves the others' results.
#
#   scripts/gpu_check.sh   (environment: OUT, TORCH_DIR, DEPS_TAR, GOLDENS, IMAGES, PHASES,
#                           BUILD_S, EVAL_S, BENCH_S, TEST_S, BACKTRACE)
#
# PHASES picks phases after the build (default "cuda-test eval bench tests"); BACKTRACE="A B"
# runs those gtest names under cuda-gdb (a debugger that also works on code without GPU kernels)
# and prints where they stop, for a test that crashes only there.
#
# DEPS_TAR: a .tar.xz of a usr/ prefix holding the build's other dependencies (nlohmann-json,
# yaml-cpp, CLI11, ICU, GoogleTest, stb) for a machine where they cannot be installed; made on
# Debian 12 by unpacking their .deb files (`apt-get download` + `dpkg -x`).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/gpu-check}
mkdir -p "$out"
say() { echo "== $(date +%T) $*"; }

prefix=
if [[ -n ${DEPS_TAR:-} ]]; then
  mkdir -p /tmp/p2l-deps && tar -xJf "$DEPS_TAR" -C /tmp/p2l-deps || exit 1
  prefix=/tmp/p2l-deps/usr
  export LD_LIBRARY_PATH=$prefix/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
torch_dir=${TORCH_DIR:-$(python3 -c 'import torch, os; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))')}
nproc_=$(nproc)
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>/dev/null
  g++ --version | head -1; cmake --version | head -1; nvcc --version | tail -1
  echo "cores $nproc_"; lscpu | grep 'Model name'
} 2>&1 | tee "$out/machine.txt"

say configure
generator=Ninja keep_going=(-k 0)
command -v ninja >/dev/null || { generator="Unix Makefiles"; keep_going=(-k); }
cmake -S . -B build-gpu -G "$generator" -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$torch_dir" \
  ${prefix:+-DCMAKE_PREFIX_PATH=$prefix} -DCMAKE_POLICY_VERSION_MINIMUM=3.5 >"$out/build.log" 2>&1 ||
  { tail -40 "$out/build.log"; exit 1; }
say build
if ! timeout "${BUILD_S:-300}" cmake --build build-gpu -j "$nproc_" \
    --target p2l_cli p2l_tests bench_methods -- "${keep_going[@]}" >>"$out/build.log" 2>&1; then
  grep -E 'error|Error' "$out/build.log" | head -40
  exit 1
fi
say built

export P2L_GOLDENS=${GOLDENS:-${P2L_GOLDENS:-../shared/goldens}}
phases=" ${PHASES:-cuda-test eval bench tests} "
want() { [[ $phases == *" $1 "* ]]; }

for test in ${BACKTRACE:-}; do
  say "backtrace of $test"
  cuda-gdb -q -batch -ex run -ex bt \
    --args ./build-gpu/tests/p2l_tests --gtest_filter="$test" 2>&1 |
    grep -E '^#|signal|SIG|Failure|max |\[ +(RUN|OK|FAILED)' | head -40
done

if want cuda-test; then
  say "CUDA operator test"
  ./build-gpu/tests/p2l_tests --gtest_filter='OperatorDevice.*' 2>&1 | tail -6
fi

images=${IMAGES:-models/emoji-64/test_images}
if want eval; then
  say "eval --device cuda on $images"
  rm -rf /tmp/p2l-eval-cuda
  start=$(date +%s)
  for i in 0 1 2 3; do
    timeout "${EVAL_S:-150}" ./build-gpu/p2l -q eval -m models/emoji-64 --images "$images" \
      --device cuda -o /tmp/p2l-eval-cuda --shard "$i/4" &
  done
  wait
  echo "eval wall $(($(date +%s) - start)) s"
  cat /tmp/p2l-eval-cuda/results.shard-*.jsonl >"$out/eval-cuda.jsonl" 2>/dev/null
  echo "jobs done: $(wc -l <"$out/eval-cuda.jsonl")"
fi

if want bench; then
  say "bench --device cuda"
  timeout "${BENCH_S:-150}" ./build-gpu/bench/bench_methods --device cuda --peak-size 8192 \
    --sd 256,512 --check-flops >"$out/bench-cuda.txt" 2>&1
  echo "bench rc $?"; tail -30 "$out/bench-cuda.txt"
fi

if want tests; then
  say "test suite"
  (cd build-gpu && timeout "${TEST_S:-150}" ctest -j "$((nproc_ / 2))" --output-on-failure) >"$out/ctest.log" 2>&1
  grep -E 'tests passed|tests failed|\*\*\*' "$out/ctest.log" | grep -v Disabled | head -30
fi
say done
