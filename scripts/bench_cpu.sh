#!/usr/bin/env bash
# The CPU tables of docs/bench.md ("Reduced precision ... this machine"): every method on the
# bundled model in fp32 and bf16, with and without channels-last weights, at 1 and 2 threads;
# batched solves; SD v1's configuration (random weights) at 256² in fp32 and bf16 at 1 thread.
# Run it on an idle machine: about 15 minutes on the 2-core development machine.
#
#   scripts/bench_cpu.sh [OUT]     raw outputs into OUT (default docs/gpu), cpu-*.txt
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/gpu}
bench=${BENCH:-build/bench/bench_methods}
mkdir -p "$out"
for threads in 1 2; do
  for layout in "" --channels-last; do
    name=cpu-bench-t$threads${layout:+-channels-last}.txt
    echo "$name"
    "$bench" --threads "$threads" --steps 10 --warmup 1 --repeats 2 --no-micro --no-profile \
      --precision fp32,bf16 $layout >"$out/$name"
  done
  echo "cpu-bench-batch-t$threads.txt"
  "$bench" --threads "$threads" --methods p2l,ldps --steps 5 --warmup 1 --no-micro \
    --precision fp32,bf16 --batch 1,4,8,16 >"$out/cpu-bench-batch-t$threads.txt"
done
echo cpu-bench-sd256-t1.txt
/usr/bin/time -f "%e s, %M KiB peak" "$bench" --threads 1 --no-bundled --sd 256 \
  --sd-methods ldps,p2l --sd-steps 1 --sd-warmup 1 --no-micro --precision fp32,bf16 \
  >"$out/cpu-bench-sd256-t1.txt" 2>&1
