#!/usr/bin/env bash
# On a lent machine with several GPUs (MLX CUDA installed): the same training run on 1 GPU and, through MLX's
# NCCL backend (`mlx.launch --backend nccl`), on each world size in WORLD, for each global batch in BATCHES
# (strong scaling: the global batch stays, each rank takes its slice). Copies every train report and its
# metrics to $OUT as train-b{BATCH}-{N}gpu.json, then `harness scaling` over them (scaling.json).
# Usage: bash scripts/gpu/dp.sh DATA_DIR "2 4" "32 64" [extra harness train args]
set -uo pipefail
python3 -c "import bashlex, jsonschema" 2>/dev/null || python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
data=$1 world=$2 batches=$3; shift 3
launch=$(python3 -c 'import shutil,sys,os; p=os.path.join(os.path.dirname(sys.executable),"mlx.launch"); print(p if os.path.exists(p) else shutil.which("mlx.launch") or "")')
nvidia-smi topo -m > "$OUT/topology.txt" 2>&1
for b in $batches; do
  common=(--config tiny --data "$data" --steps 40 --batch-size "$b" --seq-len 1024 --dtype bfloat16 --dropout 0
          --lr 3e-4 --warmup 5 --eval-every 1000 --eval-batches 2 --save-every 1000 --keep 1 --no-progress "$@")
  rm -rf /tmp/dp-b$b-1
  python3 -m harness.cli train "${common[@]}" --out /tmp/dp-b$b-1 > "$OUT/b$b-1gpu.log" 2>&1; echo "b$b 1 gpu exit $?"
  cp /tmp/dp-b$b-1/report.json "$OUT/train-b$b-1gpu.json"; cp /tmp/dp-b$b-1/metrics.jsonl "$OUT/train-b$b-1gpu.metrics.jsonl"
  for n in $world; do
    rm -rf /tmp/dp-b$b-$n
    "$launch" --backend nccl -n "$n" -- python3 -m harness.cli train "${common[@]}" --dist-backend nccl \
      --out /tmp/dp-b$b-$n > "$OUT/b$b-${n}gpu.log" 2>&1; echo "b$b $n gpus exit $?"
    cp /tmp/dp-b$b-$n/report.json "$OUT/train-b$b-${n}gpu.json"
    cp /tmp/dp-b$b-$n/metrics.jsonl "$OUT/train-b$b-${n}gpu.metrics.jsonl"
  done
done
python3 -m harness.cli scaling "$OUT"/train-b*.json --out "$OUT/scaling.json" 2>&1 | tee "$OUT/scaling.txt"
