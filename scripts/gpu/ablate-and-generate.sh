#!/usr/bin/env bash
# On a lent GPU machine (MLX CUDA installed): where the MLX step's time and memory go (scripts/gpu/ablate.py
# on medium 8 x 2048 bf16), then batch-1 generation of tiny and medium, MLX beside the twin eager and under
# torch.compile(mode="reduce-overhead") (CUDA graphs), and MLX decoding at several tokens per compiled call
# (scripts/gpu/gen_diag.py). Everything lands in $OUT/ablate-gen.tar.gz.
set -uo pipefail
python3 -c "import bashlex, jsonschema" 2>/dev/null || python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
w=/tmp/ablate-gen; rm -rf $w; mkdir -p $w
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit,driver_version --format=csv | tee $w/nvidia-smi.csv
python3 scripts/gpu/ablate.py --preset medium --batch 8 --seq 2048 --warmup 3 --repeats 8 \
  --variants default nodrop lim16 lim20 lim24 fwd fwdbwd torch-nodrop torch-compile-nodrop \
  --out $w/ablate-medium-b8-s2048.json 2>&1 | tee $w/ablate.log
for p in tiny medium; do
  python3 -m harness.cli bench --config $p --no-train --twin --torch-compile --batch 1 --seq 512 \
    --gen-prompt 256 --gen-tokens 256 --warmup 2 --repeats 5 --out $w/gen-$p.json 2>&1 | tail -n 4 | tee -a $w/gen.log
done
# per-token time of MLX decoding at 1, 4 and 16 tokens per compiled call (and the uncompiled loop)
python3 scripts/gpu/gen_diag.py tiny 256 256 | tee $w/gen-diag.jsonl
python3 scripts/gpu/gen_diag.py medium 256 128 | tee -a $w/gen-diag.jsonl
tar -C $w -czf $OUT/ablate-gen.tar.gz .
