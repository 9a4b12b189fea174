#!/usr/bin/env bash
# Reproduces the tables of docs/results.md on the bundled model:
#   1. an evaluation set of 50 test-split emoji (`p2l train test-images`, needs
#      scripts/fetch_emoji.sh's packages) and its OpenMoji renderings (scripts/fetch_openmoji.sh);
#   2. emoji: all five tasks × all five methods, σ_y = 0.05, each method's defaults;
#   3. openmoji: the cross-style run, all five tasks × all five methods, and the autoencoder's
#      reconstruction PSNR of both image sets (autoencode-emoji.json, autoencode-openmoji.json);
#      openmoji-projection-only: P2L there with prompt tuning off, so that the difference to the
#      openmoji run's p2l is what tuning does on a style the prior never saw;
#   4. emoji-ablation: P2L with prompt tuning only and with projection only on the emoji set (the
#      same measurements: seeds derive from the image and the task; P2L with both is run 2's);
#      P2L with both off is LDPS with P2L's ρ bit for bit (a test in tests/solvers_test.cpp),
#      so it is run 2's ldps column while their ρ agree (both 1.0 since 2026-12-05); where they
#      differ, the run ablation-neither makes emoji-ablation-neither, P2L with both off;
#   5. emoji-equal-compute: P2L at 100 steps, which costs what the baselines cost at run 2's 200
#      (P2L's step is two UNet and two decoder passes, forward and backward, LDPS's one of each);
#      emoji-equal-compute-400: the four baselines at 400 steps, against run 2's P2L at 200;
#      emoji-projection-only-400: P2L without prompt tuning at 400 steps, which costs what run 2's
#      P2L costs: whether the passes tuning spends would do more as steps;
#      emoji-projection-only-400-g20: the same with projection-every=20, the 10 projections of a
#      200-step run (γ counts steps, so at 400 steps γ = 10 projects 20 times);
#   6. emoji-prompts: P2L started from each image's true caption (captions.json beside the images)
#      and from the generic caption "emoji"; the null prompt is run 2's p2l column;
#      emoji-prompts-fixed: P2L conditioned on the true caption without tuning it (prompt tuning
#      off), so that the difference to p2l-caption is what tuning adds to a good prompt.
# Each run is NP shard processes (`p2l eval --shard i/NP --resume`, THREADS threads each), merged
# when all have finished. Interrupted, it resumes where it stopped when run again.
#
#   scripts/results.sh [emoji|openmoji|openmoji-projection-only|ablation|ablation-neither|
#                       equal-compute|equal-compute-400|projection-only-400|
#                       projection-only-400-g20|prompts|prompts-fixed|all]
#       (default all, which is every run but openmoji-projection-only, ablation-neither,
#       equal-compute-400, the two projection-only-400 runs and prompts-fixed;
#       environment: NP=2 THREADS=1 P2L, MODEL=models/emoji-64, RUN=runs/results: another
#       model's runs go in another folder, BATCH=1: `p2l eval --batch`, jobs of one task and
#       method solved together — on this CPU batches of 8 give about 1.4× the jobs per hour;
#       each record equals its unbatched solve up to float rounding)
#   scripts/results.sh save   copies the finished jobs' records and images of every run folder
#                             to docs/results/partial/<RUN's name>/, to be committed: a run starts
#                             from them when its folder is new, so a set too long for one sitting
#                             (a session, a fresh clone) goes on where the last one stopped. Same
#                             NP needed. (Jobs saved as records alone run again for their images.)
#
# Cost on the 2-core development machine, six-style prior (2026-12-05, median seconds of one
# core per image × task, two shards): P2L 28, LDPS 14, GML-DPS 17, PSLD 17, ReSample 26 — about
# 100 s for the five methods, 7 core-hours per five-task run (runs 2 and 3). The other runs
# follow from these: the ablation about 42 s for its two columns and 14 s for its third, P2L at
# 100 steps about 14 s, the two prompt variants 56 s, the fixed caption and P2L untuned on
# OpenMoji about 15 s each, the four baselines at 400 steps about 150 s, P2L untuned at 400
# steps about 17 s (measured, batches of 8). In all about 32 core-hours (the first prior's
# smaller UNet: about three quarters).
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
np=${NP:-2}
threads=${THREADS:-1}
batch=${BATCH:-1}
p2l=${P2L:-build/p2l}
model=${MODEL:-models/emoji-64}
run=${RUN:-runs/results}
# Box inpainting first: the task where the solvers' margin over the naive reconstruction is in
# question (docs/solvers.md); the jobs run task by task, so a partial run has whole tasks.
tasks=box-inpaint,sr,motion-blur,gauss-blur,random-inpaint
carried=docs/results/partial/$(basename "$run")
case $which in
  emoji | openmoji | openmoji-projection-only | ablation | ablation-neither | equal-compute | \
    equal-compute-400 | projection-only-400 | projection-only-400-g20 | prompts | prompts-fixed | \
    all | save) ;;
  *) echo "results.sh: unknown run '$which'" >&2; exit 2 ;;
esac

if [[ $which == save ]]; then
  for dir in "$run"/*/; do
    name=$(basename "$dir")
    compgen -G "$dir/results.shard-*.jsonl" >/dev/null || continue
    # A merged run is finished: its records belong in docs/results/, not in the partial folder.
    [[ -f $dir/results.jsonl ]] && { echo "$dir: finished (merged), not carried"; continue; }
    mkdir -p "$carried/$name"
    cp "$dir"/results.shard-*.jsonl "$dir"/plan.shard-*.json "$carried/$name/"
    # The images too (about 6 KB each): `p2l eval --resume` runs a recorded job again when its
    # images are gone, since the summary (FD-emoji, montages) reads them.
    [[ -d $dir/images ]] && cp -r "$dir/images" "$carried/$name/"
    echo "$carried/$name: $(cat "$dir"/results.shard-*.jsonl | wc -l) finished jobs"
  done
  exit 0
fi

if [[ ! -f $run/images/emoji/captions.json ]]; then
  "$p2l" train test-images --count 50 --images-out "$run/images/emoji"
fi
if [[ ($which == openmoji || $which == all) && -z $(ls "$run/images/openmoji" 2>/dev/null) ]]; then
  scripts/fetch_openmoji.sh "$run/images/emoji" "$run/images/openmoji"
fi

# Runs `p2l eval` as NP shards in the background, then merges them into the run folder.
sharded_eval() {
  local out=$1
  shift
  local pids=()
  local saved
  saved=$carried/$(basename "$out")
  if [[ -d $saved ]] && ! compgen -G "$out/results.shard-*.jsonl" >/dev/null; then
    mkdir -p "$out"
    cp -r "$saved"/. "$out/"
    echo "$out: resuming from $(cat "$saved"/results.shard-*.jsonl | wc -l) jobs in $saved"
  fi
  for ((i = 0; i < np; ++i)); do
    "$p2l" --threads "$threads" -q eval -m "$model" -o "$out" --shard "$i/$np" --resume \
      --batch "$batch" --tasks "$tasks" "$@" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  "$p2l" eval --merge "$out" -o "$out"
}

if [[ $which == emoji || $which == all ]]; then
  sharded_eval "$run/emoji" --images "$run/images/emoji"
fi
if [[ $which == openmoji || $which == all ]]; then
  # The autoencoder's own reconstruction of both sets: the ceiling of every latent method.
  for set in emoji openmoji; do
    "$p2l" -q autoencode -m "$model" "$run/images/$set" --json "$run/autoencode-$set.json" >/dev/null
  done
  sharded_eval "$run/openmoji" --images "$run/images/openmoji"
fi
if [[ $which == openmoji-projection-only ]]; then
  sharded_eval "$run/openmoji-projection-only" --images "$run/images/openmoji" --methods none \
    --variant p2l-projection-only=p2l:prompt-tuning=0
fi
if [[ $which == ablation || $which == all ]]; then
  sharded_eval "$run/emoji-ablation" --images "$run/images/emoji" --methods none \
    --variant p2l-prompt-only=p2l:projection=0 \
    --variant p2l-projection-only=p2l:prompt-tuning=0
fi
if [[ $which == ablation-neither ]]; then
  sharded_eval "$run/emoji-ablation-neither" --images "$run/images/emoji" --methods none \
    --variant p2l-neither=p2l:projection=0,prompt-tuning=0
fi
if [[ $which == equal-compute || $which == all ]]; then
  sharded_eval "$run/emoji-equal-compute" --images "$run/images/emoji" --methods none \
    --variant p2l-100=p2l:steps=100
fi
if [[ $which == equal-compute-400 ]]; then
  sharded_eval "$run/emoji-equal-compute-400" --images "$run/images/emoji" --methods none \
    --variant ldps-400=ldps:steps=400 --variant gml-dps-400=gml-dps:steps=400 \
    --variant psld-400=psld:steps=400 --variant resample-400=resample:steps=400
fi
if [[ $which == projection-only-400 ]]; then
  sharded_eval "$run/emoji-projection-only-400" --images "$run/images/emoji" --methods none \
    --variant p2l-projection-only-400=p2l:prompt-tuning=0,steps=400
fi
if [[ $which == projection-only-400-g20 ]]; then
  sharded_eval "$run/emoji-projection-only-400-g20" --images "$run/images/emoji" --methods none \
    --variant p2l-projection-only-400-g20=p2l:prompt-tuning=0,steps=400,projection-every=20
fi
if [[ $which == prompts || $which == all ]]; then
  sharded_eval "$run/emoji-prompts" --images "$run/images/emoji" --methods none \
    --variant p2l-caption=p2l:prompt=@caption --variant p2l-emoji=p2l:prompt=emoji
fi
if [[ $which == prompts-fixed ]]; then
  sharded_eval "$run/emoji-prompts-fixed" --images "$run/images/emoji" --methods none \
    --variant p2l-caption-fixed=p2l:prompt=@caption,prompt-tuning=0
fi
