#!/usr/bin/env bash
# The checks that need a CUDA GPU (issue 27), as two calls of at most 10 minutes on one machine:
# builds p2l against a CUDA build of LibTorch 2.x (by default the one inside the machine's
# Python PyTorch), then runs the phases named in PHASES:
#   version   `p2l --version` (LibTorch, CUDA, cuDNN, attention path, precisions)
#   sd        bench_methods on SD v1's architecture (random weights) at 512²: every method in
#             fp32, bf16 and fp16, ms / step after SD_WARMUP warm steps, CUDA peak memory
#             (the networks in P, the autoencoder in float32: p2l's default)
#   sd-vae    LDPS and P2L with the autoencoder in the networks' bf16 / fp16 (--vae-precision)
#   sd-cl     the same for bf16 with channels-last weights (LDPS, P2L)
#   sd-tune   bf16 LDPS and P2L with cuDNN's benchmark mode, and each network's forward/backward
#   sd-1000   one whole 999-step P2L solve at 512² in fp16, the fastest precision measured (SD's
#             schedule with its step offset
#             of 1 has no room for 1000 DDIM steps: t = 1000 does not exist, in diffusers either)
#   batch     the bundled model's batched solves at batch 1, 8 and 64 (samples per second)
#   eval      `p2l eval --device cuda` on IMAGES with the networks in fp32, bf16 and fp16 beside
#             a float32 autoencoder (p2l's default), and all-bf16 / all-fp16 (--vae-precision);
#             4 shards each, all at once; then each job's PSNR against fp32 and each method's mean
#   tests     the whole test suite (the CUDA tests run instead of skipping)
# Logs and results go to OUT (default runs/gpu-check). Every phase has a time limit, so a slow
# or broken phase still leaves the others' results. A second call with the build folder still
# there (a warm machine) skips the build.
#
#   PHASES="version sd sd-vae sd-1000" scripts/gpu_check.sh          (first call)
#   PHASES="sd-tune batch eval tests" TEST_FILTER="*ModelGolden*:ModelLayouts*:Checkpoint* \
#     Precision*:Linking*:Flops*:OperatorDevice*:DiffusionTraining.Cuda*:-*Quality \
#     BatchedSolve*:Solvers.*" scripts/gpu_check.sh
# (second call, at once, while the machine is warm: the build is kept). A call carries the whole
# working tree, at most 64 MiB: `git ls-files -z | du -cb --files0-from=- | tail -1` must stay
# below 67,108,864 (65,466,718 on 2026-12-06, with docs/' records gzip-compressed). 2026-12-04 these took
# 264 s and 402 s of one 15-minute lease (docs/bench.md); the machine had gone cold in between.
#   environment: OUT, TORCH_DIR, DEPS_TAR, GOLDENS_TAR, GOLDENS, IMAGES, BUILD_S, EVAL_S,
#                TEST_S, TEST_FILTER, SD_WARMUP, SD_STEPS, SD_1000_PRECISION, SD_1000_S
#
# DEPS_TAR: a .tar.xz of a usr/ prefix holding the build's other dependencies (nlohmann-json,
# yaml-cpp, CLI11, ICU, GoogleTest, libpng, libjpeg-turbo, libzip with zlib's headers, and
# pkgconf) for a machine where they cannot be installed; made on Debian 12 by unpacking their
# .deb files (`apt-get download` + `dpkg -x`; docs/bench.md).
# GOLDENS_TAR: a goldens folder as a .tar.xz (unpacked to /tmp/p2l-goldens); by default the
# tests read the repository's copy (tests/goldens).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/gpu-check}
mkdir -p "$out"
say() { echo "== $(date +%T) $*"; }

prefix=
if [[ -n ${DEPS_TAR:-} ]]; then
  [[ -d /tmp/p2l-deps/usr ]] || { mkdir -p /tmp/p2l-deps && tar -xJf "$DEPS_TAR" -C /tmp/p2l-deps; } || exit 1
  prefix=/tmp/p2l-deps/usr
  libdir=$prefix/lib/x86_64-linux-gnu
  export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  # The unpacked .pc files name /usr: point them at the prefix (libzip is found by pkg-config,
  # which the prefix brings as pkgconf in case the machine has none).
  sed -i "s#^prefix=/usr\$#prefix=$prefix#" "$libdir"/pkgconfig/*.pc "$prefix"/share/pkgconfig/*.pc 2>/dev/null
  export PATH=$prefix/bin:$PATH PKG_CONFIG_PATH=$libdir/pkgconfig:$prefix/share/pkgconfig
  # zlib1g-dev's libz.so links to Debian's absolute path: use the machine's own zlib.
  if [[ ! -e $libdir/libz.so ]]; then
    system_zlib=$(ls /lib/x86_64-linux-gnu/libz.so.1 /usr/lib/x86_64-linux-gnu/libz.so.1 2>/dev/null | head -1)
    [[ -n $system_zlib ]] && ln -sf "$system_zlib" "$libdir/libz.so"
  fi
fi
goldens=${GOLDENS:-${P2L_GOLDENS:-}}
if [[ -n ${GOLDENS_TAR:-} ]]; then
  [[ -f /tmp/p2l-goldens/goldens.json ]] || { mkdir -p /tmp/p2l-goldens && tar -xJf "$GOLDENS_TAR" -C /tmp/p2l-goldens; }
  goldens=/tmp/p2l-goldens
fi
[[ -n $goldens ]] && export P2L_GOLDENS=$goldens
torch_dir=${TORCH_DIR:-$(python3 -c 'import torch, os; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))')}
nproc_=$(nproc)
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>/dev/null
  g++ --version | head -1; cmake --version | head -1; nvcc --version | tail -1
  echo "cores $nproc_"; lscpu | grep 'Model name'
} 2>&1 | tee "$out/machine.txt"

if [[ ! -x build-gpu/p2l || ! -x build-gpu/bench/bench_methods || ! -x build-gpu/tests/p2l_tests ]]; then
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
fi

phases=" ${PHASES:-version sd sd-vae sd-cl sd-1000 batch eval tests} "
want() { [[ $phases == *" $1 "* ]]; }
bench=./build-gpu/bench/bench_methods
sd_warmup=${SD_WARMUP:-5} sd_steps=${SD_STEPS:-5}

if want version; then
  say version
  ./build-gpu/p2l --version 2>&1 | tee "$out/version.txt"
fi

if want sd; then
  say "SD v1 512², fp32 / bf16 / fp16"
  timeout 240 $bench --device cuda --no-bundled --sd 512 --sd-warmup "$sd_warmup" \
    --sd-steps "$sd_steps" --precision fp32,bf16,fp16 --peak-size 8192 >"$out/bench-sd.txt" 2>&1
  echo "rc $?"; grep -E '^\| (p2l|ldps|gml-dps|psld|resample) \| [0-9.]+ \|' "$out/bench-sd.txt" | head -15
fi

if want sd-vae; then
  for p in bf16 fp16; do
    say "SD v1 512², LDPS and P2L, all three networks in $p"
    timeout 90 $bench --device cuda --no-bundled --sd 512 --sd-warmup "$sd_warmup" \
      --sd-steps "$sd_steps" --sd-methods ldps,p2l --precision $p --vae-precision $p \
      --peak-size 4096 >"$out/bench-sd-vae-$p.txt" 2>&1
    echo "rc $?"; grep -E '^\| (p2l|ldps) \| [0-9.]+ \|' "$out/bench-sd-vae-$p.txt"
  done
fi

if want sd-cl; then
  say "SD v1 512², bf16, channels-last"
  timeout 90 $bench --device cuda --no-bundled --sd 512 --sd-warmup "$sd_warmup" --sd-steps "$sd_steps" \
    --sd-methods ldps,p2l --precision bf16 --channels-last --peak-size 4096 >"$out/bench-sd-cl.txt" 2>&1
  echo "rc $?"; grep -E '^\| (p2l|ldps) \| [0-9.]+ \|' "$out/bench-sd-cl.txt"
fi

if want sd-tune; then
  say "SD v1 512², bf16, cuDNN benchmark mode, per-network micro-benchmarks"
  timeout 80 $bench --device cuda --no-bundled --sd 512 --sd-warmup 3 --sd-steps 5 \
    --sd-methods ldps,p2l --precision bf16 --cudnn-benchmark --sd-micro --peak-size 4096 \
    >"$out/bench-sd-tune.txt" 2>&1
  echo "rc $?"; grep -E '^\| (p2l|ldps|UNet|decoder|encoder) \| [0-9.]+ \|' "$out/bench-sd-tune.txt"
fi

if want sd-1000; then
  say "SD v1 512², one 999-step P2L solve in ${SD_1000_PRECISION:-fp16}"
  timeout "${SD_1000_S:-260}" $bench --device cuda --no-bundled --sd 512 --sd-methods p2l \
    --sd-steps 999 --precision "${SD_1000_PRECISION:-fp16}" --peak-size 4096 \
    >"$out/bench-sd-1000.txt" 2>&1
  echo "rc $?"; grep -E '^\| p2l \| [0-9.]+ \|' "$out/bench-sd-1000.txt"
fi

if want batch; then
  say "bundled model, batch 1 / 8 / 64"
  timeout 90 $bench --device cuda --batch 1,8,64 --steps 20 --warmup 2 --methods ldps,p2l \
    --precision fp32,bf16 --peak-size 4096 >"$out/bench-batch.txt" 2>&1
  echo "rc $?"; grep -E '^\| (p2l|ldps) \| [0-9]+ \|' "$out/bench-batch.txt"
fi

# The suite with ctest on J processes, or with TEST_FILTER only those gtest names: several
# filters separated by spaces run one after the other (gtest runs a filter's tests in the
# binary's order, so put what must run first in a filter of its own), within TEST_S in all.
# Parameterised suites have a prefix: '*ModelGolden*', not 'ModelGolden*'.
run_tests() {
  if [[ -n ${TEST_FILTER:-} ]]; then
    local end=$((SECONDS + ${TEST_S:-400}))
    : >"$out/ctest.log"
    for filter in $TEST_FILTER; do
      ((SECONDS < end)) || break
      timeout "$((end - SECONDS))" ./build-gpu/tests/p2l_tests --gtest_filter="$filter" \
        >>"$out/ctest.log" 2>&1
    done
    grep -E '^\[  (PASSED|FAILED|SKIPPED) |tests ran' "$out/ctest.log" | head -30
  else
    (cd build-gpu && timeout "${TEST_S:-400}" ctest -j "$1" --output-on-failure) >"$out/ctest.log" 2>&1
    grep -E 'tests passed|tests failed|\*\*\*|Failed' "$out/ctest.log" | grep -v Disabled | head -30
  fi
}

images=${IMAGES:-models/emoji-64/test_images}
if want eval; then
  # NETWORKS-AUTOENCODER precisions; the run's name is its folder and records file.
  variants="fp32-fp32 bf16-fp32 fp16-fp32 bf16-bf16 fp16-fp16"
  say "eval --device cuda on $images: $variants"
  rm -rf /tmp/p2l-eval
  for variant in $variants; do
    for i in 0 1 2 3; do
      timeout "${EVAL_S:-200}" ./build-gpu/p2l -q --threads 1 eval -m models/emoji-64 \
        --images "$images" --device cuda --precision "${variant%-*}" \
        --vae-precision "${variant#*-}" -o "/tmp/p2l-eval/$variant" \
        --shard "$i/4" >/dev/null 2>>"$out/eval-errors.txt" &
    done
  done
  # The suite runs on the CPU cores meanwhile (its CUDA tests are short).
  if want tests; then
    say "test suite (beside the evaluation)"
    run_tests "$((nproc_ / 4))"
  fi
  wait
  for variant in $variants; do
    cat "/tmp/p2l-eval/$variant"/results.shard-*.jsonl >"$out/eval-$variant.jsonl" 2>/dev/null
    echo "$variant jobs done: $(wc -l <"$out/eval-$variant.jsonl")"
  done
  # shellcheck disable=SC2046  # one file per variant, fp32 (the reference) first
  python3 scripts/precision_compare.py $(printf "$out/eval-%s.jsonl " $variants) |
    tee "$out/eval-compare.md"
elif want tests; then
  say "test suite"
  run_tests "$((nproc_ / 2))"
fi
say done
