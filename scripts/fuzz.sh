#!/usr/bin/env bash
# Runs one libFuzzer target (docs/fuzzing.md): ./scripts/fuzz.sh TARGET SECONDS [libFuzzer args]
#   TARGET: safetensors, pickle, torch_checkpoint, image, measurement, yaml_config, model_json,
#           tokenizer_files, tokenizer_encode (fuzz/fuzz_TARGET.cpp)
# Builds build-fuzz/ with clang and the sanitizers if needed, starts from the committed seeds
# (fuzz/corpus/TARGET) and grows a working corpus in runs/fuzz/TARGET/corpus (not in git); crash
# files land in runs/fuzz/TARGET/. One job, one worker: the machine is shared.
# Environment: P2L_FUZZ_BUILD (build folder, default build-fuzz), JOBS (build jobs, default 1),
# P2L_FUZZ_NO_BUILD=1 (run the binary as built, e.g. while the sources are being edited).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
target=$1 seconds=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
build=${P2L_FUZZ_BUILD:-$root/build-fuzz}
[[ -f $root/fuzz/fuzz_$target.cpp ]] || { echo "fuzz.sh: no target fuzz/fuzz_$target.cpp" >&2; exit 2; }

export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$root")}
if [[ -n ${P2L_FUZZ_NO_BUILD:-} && -x $build/fuzz/fuzz_$target ]]; then
  :
elif [[ ! -f $build/build.ninja ]]; then
  # -O1 with line tables: fast enough to fuzz, and the reports name the lines. No -DNDEBUG, so
  # the assertions in the headers (nlohmann::json, LibTorch) are checked too.
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DP2L_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only"
  cmake --build "$build" -j "${JOBS:-1}" --target "fuzz_$target"
else
  cmake --build "$build" -j "${JOBS:-1}" --target "fuzz_$target"
fi

case $target in
  safetensors | measurement | model_json | tokenizer_files) dict=json ;;
  pickle | torch_checkpoint) dict=pickle ;;
  yaml_config) dict=yaml ;;
  *) dict= ;;
esac
# A UB report with the stack that led to it (the line in nlohmann's header alone says little).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
work=$root/runs/fuzz/$target
mkdir -p "$work/corpus"
args=(-rss_limit_mb=2048 -timeout=10 -max_total_time="$seconds" -jobs=1 -workers=1
      -print_final_stats=1 -artifact_prefix="$work/")
[[ -n $dict ]] && args+=(-dict="$root/fuzz/dict/$dict.dict")
log=$work/fuzz-$(date +%Y%m%d-%H%M%S).log
# -jobs=1 makes libFuzzer write its output to fuzz-0.log in the current folder.
(cd "$work" && "$build/fuzz/fuzz_$target" "${args[@]}" "$@" "$work/corpus" "$root/fuzz/corpus/$target") \
  >"$log" 2>&1 || true
[[ -f $work/fuzz-0.log ]] && cat "$work/fuzz-0.log" >>"$log" && rm -f "$work/fuzz-0.log"
# libFuzzer ends its processes with _Exit, past the targets' exit handler: remove the scratch
# folders (fuzz/fuzz_input.h) of processes that are gone.
for dir in /dev/shm/p2l-fuzz-*; do
  if [[ -d $dir ]] && ! kill -0 "${dir##*-}" 2>/dev/null; then rm -rf "$dir"; fi
done

echo "== fuzz_$target: $seconds s, log $log"
grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -1 || true
grep -E '^stat::' "$log" | awk '!seen[$0]++' || true
echo "corpus: $(find "$work/corpus" -type f | wc -l) files, $(du -sh --apparent-size "$work/corpus" | cut -f1)"
crashes=$(find "$work" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
if [[ -n $crashes ]]; then
  echo "findings:"
  echo "$crashes"
  grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|terminate called|  what\(\))' "$log" | head -5 || true
  exit 1
fi
echo "findings: none"
