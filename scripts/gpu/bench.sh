#!/usr/bin/env bash
# On a lent GPU machine (MLX CUDA installed by ../shared/gpu/stage-mlx-cuda.sh's two steps), from the
# project root: install the few pure-Python wheels the machine lacks, then benchmark MLX beside the
# PyTorch twin (eager and torch.compile) from the same weights. Reports go to $OUT.
# Usage: bash scripts/gpu/bench.sh PRESET BATCH SEQ [extra harness bench args]
set -euo pipefail
python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl 2>/dev/null || true
export PYTHONPATH=$PWD
preset=$1 batch=$2 seq=$3; shift 3
python3 -m harness.cli bench --config "$preset" --batch "$batch" --seq "$seq" --dtype bfloat16 \
  --twin --torch-compile --warmup 3 --repeats 10 --out "$OUT/bench-gpu-$preset-b$batch-s$seq.json" "$@"
