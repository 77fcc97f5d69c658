#!/usr/bin/env bash
# The demo: the whole story on XOR, then a real data set, with the same commands a user would type.
#   1. train DEEP on XOR on the ideal ODE substrate (10 seeds, stochastic pruning + L1)
#   2. Lyapunov / stability checks of the chosen network
#   3. export it as a standalone SPICE netlist and run it in plain ngspice
#   4. compile it to Brian2 and SPICE, compare with the accurate ODE reference, train on each
#   5. train DEEP (with a sink neuron) on handwritten digits and run test samples on the ODE and on SPICE
# Everything lands in $OUT (default runs/demo): models, netlist, plots, report.md.
set -euo pipefail
OUT=${1:-runs/demo}
BIN=${BIN:-.venv/bin}
DC="$BIN/deepcircuit"
EPOCHS=${DEMO_EPOCHS:-200}
mkdir -p "$OUT"
start=$(date +%s)

echo "== 1. train DEEP on XOR: ideal ODE substrate, 10 seeds, stochastic pruning + L1 =="
"$DC" train --task xor --model deep --topology complete --hidden 5 --epochs "$EPOCHS" --seeds 10 --seed 0 \
    --prune stochastic --l1 1.5e-4 --out "$OUT/models" --json > "$OUT/train.log"
head -n -1 "$OUT/train.log"
tail -n 1 "$OUT/train.log" > "$OUT/train.json"

# The network to study: the solved seeds in order (those whose final evaluation settled first, then
# by MSE); the first whose own trajectories settle in the stability check below is kept. Plain
# DEEP conserves activity (a zero eigenvalue), so some solved networks approach their equilibrium
# too slowly to settle in 50 tau from the check's initial states; the demo shows one that does.
mapfile -t CANDIDATES < <("$BIN/python" -c "
import json, sys
d = json.load(open(sys.argv[1]))
order = sorted(range(len(d['seeds'])), key=lambda k: (d['train_error'][k] > 0,
               len(d['unsettled_presentations'][k]), d['mse'][k]))
print('\\n'.join(d['models'][k] for k in order))" "$OUT/train.json")
MODEL=""
for m in "${CANDIDATES[@]}"; do
    "$DC" lyapunov "$m" --task xor --json > "$OUT/lyapunov.log"
    if tail -n 1 "$OUT/lyapunov.log" | "$BIN/python" -c "
import json, sys
sys.exit(json.load(sys.stdin)['stability'] in ('not-settled', 'diverged'))"; then MODEL=$m; break; fi
done
if [ -z "$MODEL" ]; then
    MODEL=${CANDIDATES[0]}
    echo "no trained seed settles in the stability check's 50 tau; showing the best one anyway"
    "$DC" lyapunov "$MODEL" --task xor --json > "$OUT/lyapunov.log"
fi
echo; echo "chosen model: $MODEL"

echo; echo "== 2. stability: Gershgorin certificates, Jacobian at the equilibria, V along the trajectories =="
head -n -1 "$OUT/lyapunov.log"
tail -n 1 "$OUT/lyapunov.log" > "$OUT/lyapunov.json"

echo; echo "== 3. export a standalone SPICE netlist and run it in plain ngspice =="
"$DC" export "$MODEL" --task xor --out "$OUT/xor.cir"
if command -v ngspice >/dev/null; then
    ngspice -b "$OUT/xor.cir" > "$OUT/xor.ngspice.log" 2>&1 && echo "plain 'ngspice -b $OUT/xor.cir' ran: $(wc -l < "$OUT/xor.ngspice.log") lines in $OUT/xor.ngspice.log"
fi

echo; echo "== 4. compare substrates: ODE (projected Euler), Brian2 (rate), SPICE (diode clamps, stiff limiter) =="
"$DC" compare "$MODEL" --task xor --substrates ode,brian2,spice,spice:clamp=limiter \
    --train-epochs "$EPOCHS" --out "$OUT/comparison" --json > "$OUT/compare.log"
tail -n 1 "$OUT/compare.log" > "$OUT/compare.json"

echo; echo "== 5. a real data set: handwritten digits (8x8, 10 classes) on a 64-100-10 DEEP network with a sink neuron =="
"$DC" train --task digits --seeds 1 --epochs "${DEMO_DIGITS_EPOCHS:-30}" --out "$OUT/digits" --json --quiet \
    > "$OUT/digits.log"
head -n -1 "$OUT/digits.log"
tail -n 1 "$OUT/digits.log" > "$OUT/digits.json"
echo; echo "   the trained digits network on ${DEMO_DIGITS_SAMPLES:-20} test samples: ODE and SPICE (limiter clamps)"
"$DC" compare "$OUT/digits/seed0.json" --samples "${DEMO_DIGITS_SAMPLES:-20}" --substrates ode,spice:clamp=limiter \
    --quiet --json > "$OUT/digits_compare.log"
head -n -1 "$OUT/digits_compare.log"

"$BIN/python" - "$OUT" "$MODEL" <<'PY'
import json, sys
from pathlib import Path
out, model = Path(sys.argv[1]), sys.argv[2]
t = json.loads((out / "train.json").read_text())
ly = json.loads((out / "lyapunov.json").read_text())
cmp_md = (out / "comparison" / "report.md").read_text()
lines = ["# deepcircuit demo: DEEP on XOR", "",
         f"Training (ODE substrate, {t['epochs']} epochs, pruning): {t['solved']}/{len(t['seeds'])} seeds at 0 % "
         f"training error in {t['seconds']:.1f} s; sparsity per seed: "
         + ", ".join(f"{100 * s:.0f} %" for s in t["sparsity"]) + ".", "",
         f"Studied model: `{model}`; stability: Hurwitz = {ly.get('hurwitz')}, spectral abscissa = "
         f"{ly.get('spectral_abscissa'):.4g} /tau, Lyapunov function: {ly.get('lyapunov_function')}.", "",
         "Gershgorin conditions: " + ", ".join(f"{k}: {'holds' if v.get('holds') else 'fails'}"
                                                for k, v in ly.get("gershgorin", {}).items()) + ".", "",
         "Netlist: `xor.cir` (runs in plain `ngspice -b`).", "",
         cmp_md.replace("](", "](comparison/").replace("# Substrate comparison", "## Substrate comparison")]
dg = json.loads((out / "digits.json").read_text())
lines += ["", "## Digits", "",
          f"`deepcircuit train --task digits`: {dg['model']}, {dg['topology']} {dg['hidden']}, {dg['epochs']} epochs: "
          f"test accuracy {100 * dg['test_accuracy'][0]:.1f} % ({dg['sizes']['test']} samples), train "
          f"{100 * dg['train_accuracy'][0]:.1f} %, in {dg['seconds']:.0f} s. ODE against SPICE on test samples: "
          "`digits_compare.log`."]
from deepcircuit.learning.model_file import write_atomic
write_atomic(out / "report.md", "\n".join(lines))
PY

echo; echo "== comparison (units of V_scale; see $OUT/report.md and the plots in $OUT/comparison/) =="
"$BIN/python" - "$OUT/compare.log" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
print("\n".join(l for l in lines[:-1] if l.strip() and not l.startswith("report and plots")))
PY
echo; echo "demo finished in $(( $(date +%s) - start )) s; report: $OUT/report.md"
