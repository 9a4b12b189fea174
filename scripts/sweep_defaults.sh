#!/usr/bin/env bash
# The sweep behind the small model's solver defaults (docs/solvers.md): every method's main step
# size (ρ, PSLD's ω) on the same grid, on all five tasks (in two sweeps per method) and
# two shipped test images the solver tests do not restore (01_twitter, 02_google; the tests use
# 00_google), σ_y = 0.05, N = 200 DDIM steps; then P2L's own hyperparameters (λ, the prompt
# learning rate, K, γ) on SR and box inpainting. Writes docs/sweeps/<name>.md/.json/.svg.
# Two sweeps run at a time (SWEEP_JOBS), one thread each; about 35 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
P2L=${P2L:-./build/p2l}
MODEL=${MODEL:-models/emoji-64}
JOBS=${SWEEP_JOBS:-2}
IMAGES=(--images "$MODEL/test_images/01_twitter.png" "$MODEL/test_images/02_google.png")
STEP_GRID=0.6,1,1.6
mkdir -p docs/sweeps runs/sweeps
sweep() {  # output name, method, tasks, grid, [more p2l sweep options]
  local name=$1 method=$2 tasks=$3 grid=$4
  shift 4
  "$P2L" --threads 1 -q sweep -m "$MODEL" --method "$method" --tasks "$tasks" --grid "$grid" \
    "${IMAGES[@]}" --set steps=200 "$@" -o "docs/sweeps/$name" --runs-folder "runs/sweeps/$name" \
    >"runs/sweeps/$name.log" 2>&1 \
    || { echo "sweep $name failed: runs/sweeps/$name.log" >&2; return 1; }
  echo "sweep $name done"
}
throttle() { while (($(jobs -rp | wc -l) >= JOBS)); do wait -n; done; }
TASKS=sr,motion-blur,box-inpaint
for method in p2l resample ldps gml-dps psld; do
  axis=rho
  [[ $method == psld ]] && axis=omega
  throttle
  sweep "$method" "$method" "$TASKS" "$axis=$STEP_GRID" &
  throttle
  sweep "$method-gauss-random" "$method" gauss-blur,random-inpaint "$axis=$STEP_GRID" &
done
# The grid's top (1.6) was the best point for P2L, LDPS, GML-DPS and PSLD: one more point above.
for method in p2l ldps gml-dps psld; do
  axis=rho
  [[ $method == psld ]] && axis=omega
  throttle
  sweep "$method-2.5" "$method" "$TASKS" "$axis=2.5" &
done
# P2L's own hyperparameters, one or two points each around the defaults, at the chosen ρ (run
# these after setting it in src/p2l/solvers/registry.cpp).
for grid in lambda=inf prompt-lr=0.001,0.1 prompt-iters=3 projection-every=20; do
  throttle
  sweep "p2l-${grid%%=*}" p2l sr,box-inpaint "$grid" &
done
wait
