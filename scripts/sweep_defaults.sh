#!/usr/bin/env bash
# The sweep behind the small model's solver defaults (docs/solvers.md): the main step size of
# every method, σ_y = 0.05, N = 200 DDIM steps, on a shipped test image that the solver tests do
# not use (01_twitter.png; the tests restore 00_google.png). LDPS on all five tasks showed the
# same best ρ for every task, so the others are swept on two tasks (SR, box inpainting) with the
# grid moved up to bracket it. Writes docs/sweeps/<method>.md and .json. About 20 minutes on
# 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
P2L=${P2L:-./build/p2l}
MODEL=${MODEL:-models/emoji-64}
IMAGES=(--images "$MODEL/test_images/01_twitter.png")
mkdir -p docs/sweeps
sweep() {  # method, tasks, grid, output
  "$P2L" sweep -m "$MODEL" --method "$1" --tasks "$2" --grid "$3" "${IMAGES[@]}" \
    --set steps=200 -o "docs/sweeps/$4"
}
if [ "${1:-}" != "--skip-ldps" ]; then
  sweep ldps sr,gauss-blur,motion-blur,box-inpaint,random-inpaint rho=0.15,0.25,0.4 ldps
fi
sweep ldps sr,box-inpaint rho=0.6 ldps-0.6
sweep p2l sr,box-inpaint rho=0.25,0.4,0.6 p2l
sweep resample sr,box-inpaint rho=0.25,0.4,0.6 resample
sweep psld sr,box-inpaint omega=0.25,0.4,0.6 psld
sweep gml-dps sr,box-inpaint rho=0.25,0.4,0.6 gml-dps
