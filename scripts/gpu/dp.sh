#!/usr/bin/env bash
# On a lent machine with >= 2 GPUs (MLX CUDA installed): the same training run on 1 GPU and, through MLX's
# NCCL backend, on N GPUs with the same global batch. Copies both train reports and their metrics to $OUT.
# Usage: bash scripts/gpu/dp.sh DATA_DIR N [extra harness train args]
set -uo pipefail
python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl 2>/dev/null || true
export PYTHONPATH=$PWD
data=$1 n=$2; shift 2
common=(--config tiny --data "$data" --steps 40 --batch-size 16 --seq-len 1024 --dtype bfloat16 --dropout 0
        --lr 3e-4 --warmup 5 --eval-every 1000 --eval-batches 2 --save-every 1000 --keep 1 --no-progress "$@")
python3 -m harness.cli train "${common[@]}" --out /tmp/dp1 > "$OUT/dp1.log" 2>&1; echo "1 gpu exit $?"
cp /tmp/dp1/report.json "$OUT/train-1gpu.json"; cp /tmp/dp1/metrics.jsonl "$OUT/train-1gpu.metrics.jsonl"
launch=$(python3 -c 'import shutil,sys,os; p=os.path.join(os.path.dirname(sys.executable),"mlx.launch"); print(p if os.path.exists(p) else shutil.which("mlx.launch") or "")')
"$launch" --backend nccl -n "$n" -- python3 -m harness.cli train "${common[@]}" --dist-backend nccl --out /tmp/dpn \
  > "$OUT/dpn.log" 2>&1; echo "$n gpus exit $?"
cp /tmp/dpn/report.json "$OUT/train-${n}gpu.json"; cp /tmp/dpn/metrics.jsonl "$OUT/train-${n}gpu.metrics.jsonl"
tail -n 5 "$OUT/dp1.log" "$OUT/dpn.log"
