#!/usr/bin/env bash
# The sweep behind the small model's solver defaults (docs/solvers.md): the main step size of
# every method, same grid, same tasks, same two shipped test images, σ_y = 0.05, 50 steps.
# Writes docs/sweeps/<method>.md and .json. About 20 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
P2L=${P2L:-./build/p2l}
MODEL=${MODEL:-models/emoji-64}
TASKS=sr,gauss-blur,motion-blur,box-inpaint,random-inpaint
IMAGES=(--images "$MODEL/test_images/00_google.png" --images "$MODEL/test_images/01_twitter.png")
mkdir -p docs/sweeps
sweep() {  # method, grid
  "$P2L" sweep -m "$MODEL" --method "$1" --tasks "$TASKS" --grid "$2" "${IMAGES[@]}" \
    -o "docs/sweeps/$1"
}
sweep ldps rho=1,2,3,5
sweep gml-dps rho=1,2,3,5
sweep psld omega=1,2,3,5
sweep resample rho=1,2,3,5
sweep p2l rho=1,2,3,5
