#!/usr/bin/env bash
# Runs `p2l eval` as NP MPI ranks on this machine (or the hosts mpirun is given), each rank taking
# the shard OMPI_COMM_WORLD_RANK of OMPI_COMM_WORLD_SIZE, then merges the shards' results in the
# run folder and writes its summary (docs/eval.md).
#
#   scripts/eval_mpirun.sh -m models/emoji-64 --threads 1 -o runs/eval [p2l eval options...]
#
# Environment: NP ranks (default 2), P2L the p2l binary (default build/p2l), MPIRUN (default
# mpirun), MPIRUN_ARGS extra mpirun arguments (e.g. "--hostfile hosts"). Give each rank
# --threads (cores / NP) so that the ranks do not fight over the cores.
set -euo pipefail

np=${NP:-2}
p2l=${P2L:-"$(dirname "$0")/../build/p2l"}
mpirun=${MPIRUN:-mpirun}

# The run folder, for the merge.
out=""
args=("$@")
for ((i = 0; i < ${#args[@]}; ++i)); do
  case "${args[i]}" in
    -o | --output) out=${args[i + 1]:-} ;;
    --output=*) out=${args[i]#--output=} ;;
  esac
done
if [[ -z "$out" ]]; then
  echo "eval_mpirun.sh: give the run folder with -o DIR" >&2
  exit 2
fi

# --allow-run-as-root: containers and CI run as root; --oversubscribe: NP may exceed the slots
# Open MPI counts (physical cores). Word splitting of MPIRUN_ARGS is intended.
# shellcheck disable=SC2086
"$mpirun" --allow-run-as-root --oversubscribe -np "$np" ${MPIRUN_ARGS:-} "$p2l" eval "$@"
"$p2l" eval --merge "$out" -o "$out"
