#!/usr/bin/env bash
# Every GPU measurement of the baselines/GPU issue in one call, for a machine with one CUDA GPU:
#   1. the GPU tests (tests/gpu: bf16 top-k, autocast training, GPU ranks = CPU ranks);
#   2. the full-ranking top-k benchmark, 1M users × 1M items, d 64, bf16 (goal: under 3 s);
#   3. BERT4Rec and GRU4Rec on ml-100k, seeds 0, 1, 2, and SASRec seed 0, all at once (one
#      process each), for the RecBole parity table and recx's GPU epoch times; then one report.
#
#   bash bench/gpu_checks.sh OUT_DIR                 # on the GPU machine
#   GPU_CHECKS_SMOKE=1 bash bench/gpu_checks.sh /tmp/g   # the same steps in minutes on a CPU
#
# Needs recx importable (an install, or PYTHONPATH at the checkout) and ml-100k's RecBole atomic
# files in data/ml_100k/. A machine without Hydra gets it as wheels made elsewhere by
# bench/gpu_wheels.sh (the comment there says how). Each step is capped so that the later ones
# still run: TOPK_S, TRAIN_S (seconds). Writes to OUT_DIR: gpu_checks.log (everything),
# pytest_gpu.txt, topk.txt, parity.md, parity.csv, epochs.csv.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash bench/gpu_checks.sh OUT_DIR}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_checks.log") 2>&1
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
RECX=("$PY" -m recx)
ROOT=${ROOT:-$(mktemp -d)}  # this call's outputs/ and cache (outputs/ of the checkout stays untouched)
SMOKE=${GPU_CHECKS_SMOKE:-0}
say() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }

if [[ $SMOKE == 1 ]]; then
  DEVICE=cpu TOPK=(--device cpu --users 256 --items 100000) TRAIN=(train=fast)
else
  DEVICE=cuda TOPK=(--device cuda --users 1000000 --items 1000000 --dim 64 --dtype bf16
                    --user-chunk 4096)
  TRAIN=()
fi
TOPK_S=${TOPK_S:-150} TRAIN_S=${TRAIN_S:-360}

say "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
torch.cuda.get_device_name() if torch.cuda.is_available() else '')"

say "GPU tests"
"$PY" -m pytest -m gpu tests/gpu -q -p no:cacheprovider 2>&1 | tee "$OUT/pytest_gpu.txt"

say "top-k benchmark"
timeout "$TOPK_S" "$PY" bench/bench_topk.py "${TOPK[@]}" 2>&1 | tee "$OUT/topk.txt"

say "ml-100k: preprocess once, then BERT4Rec ×3, GRU4Rec ×3, SASRec ×1 side by side"
common=(dataset=ml_100k device="$DEVICE" paths.outputs="$ROOT/outputs" progress=false "${TRAIN[@]}")
"${RECX[@]}" preprocess dataset=ml_100k paths.outputs="$ROOT/outputs" progress=false || exit 1
jobs=()
for run in bert4rec:0 bert4rec:1 bert4rec:2 gru4rec:0 gru4rec:1 gru4rec:2 sasrec:0; do
  m=${run%:*} s=${run#*:}
  OMP_NUM_THREADS=2 timeout "$TRAIN_S" "${RECX[@]}" train model="$m" seed="$s" "${common[@]}" \
    > "$ROOT/train_${m}_s$s.log" 2>&1 &
  jobs+=("$!:$m:$s")
done
for j in "${jobs[@]}"; do
  pid=${j%%:*}; wait "$pid"; rc=$?
  echo "train ${j#*:}: exit $rc$([[ $rc == 124 ]] && echo " (stopped at TRAIN_S=${TRAIN_S}s)")"
  [[ $rc == 0 ]] || tail -n 5 "$ROOT/train_$(cut -d: -f2 <<<"$j")_s$(cut -d: -f3 <<<"$j").log"
done

say "parity report"
"${RECX[@]}" report report.name=gpu_parity report.rows=[model] report.figures=false \
  "+report.where.target=[ml_100k]" paths.outputs="$ROOT/outputs"
cp "$ROOT/outputs/tables/gpu_parity/results.md" "$OUT/parity.md" 2>/dev/null
cp "$ROOT/outputs/tables/gpu_parity/results.csv" "$OUT/parity.csv" 2>/dev/null
# seconds per training epoch and epochs run, from each run's fit.json
"$PY" - "$ROOT" "$OUT/epochs.csv" <<'EOF'
import csv, json, pathlib, statistics, sys
root, out = pathlib.Path(sys.argv[1]), sys.argv[2]
rows = []
for metrics in sorted(root.glob("outputs/runs/train/*/*/metrics.json")):
    row = json.loads(metrics.read_text())["rows"][0]
    fit = root / "outputs/artifacts/train" / row["model"] / "ml_100k" / row["ckpt_hash"] / "fit.json"
    if not fit.exists():
        continue
    hist = json.loads(fit.read_text())["history"]
    rows.append({"model": row["model"], "seed": row["seed"], "epochs": len(hist),
                 "median_epoch_s": round(statistics.median(h["seconds"] for h in hist), 3),
                 "total_s": round(hist[-1]["elapsed"], 1)})
with open(out, "w", newline="") as f:
    w = csv.DictWriter(f, ["model", "seed", "epochs", "median_epoch_s", "total_s"])
    w.writeheader()
    w.writerows(rows)
for r in rows:
    print(r)
EOF
say "done"
