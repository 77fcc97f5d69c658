#!/usr/bin/env bash
# The demo: the whole story on XOR with the same commands a user would type.
set -euo pipefail
OUT=${1:-runs/demo}
DC=${DC:-.venv/bin/deepcircuit}
mkdir -p "$OUT"
echo "== training DEEP on XOR (ideal ODE substrate, 10 seeds, stochastic pruning) =="
"$DC" train --task xor --model deep --topology complete --hidden 5 --epochs 200 --seeds 10 --seed 0 \
    --prune stochastic --out "$OUT/models"
