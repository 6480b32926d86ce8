#!/usr/bin/env bash
# On a lent GPU machine (MLX CUDA installed): `harness bench` over the presets that fit, MLX beside the
# PyTorch twin from the same weights; torch.compile and generation on the two target shapes. One report
# per invocation, all in $OUT/matrix.tar.gz.
set -uo pipefail
python3 -c "import bashlex, jsonschema" 2>/dev/null || python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
w=/tmp/matrix; rm -rf $w; mkdir -p $w
b() { local name=$1; shift; python3 -m harness.cli bench --twin --warmup 3 --repeats 8 --out $w/bench-$name.json "$@" 2>&1 | tail -n 6 | tee -a $w/matrix.log; }
b tiny-b16-s1024-bf16     --config tiny   --batch 16 --seq 1024 --dtype bfloat16 --torch-compile --gen-prompt 256 --gen-tokens 256
b tiny-b16-s1024-fp32     --config tiny   --batch 16 --seq 1024 --dtype float32 --no-generate
b tiny-b16-s1024-ckpt     --config tiny   --batch 16 --seq 1024 --dtype bfloat16 --grad-checkpoint on --no-generate
b medium-b8-s2048-bf16    --config medium --batch 8 --seq 2048 --dtype bfloat16 --torch-compile --no-generate
b medium-b16-s2048-bf16   --config medium --batch 16 4 --seq 2048 --dtype bfloat16 --no-generate
b medium-b8-s2048-fp32    --config medium --batch 8 --seq 2048 --dtype float32 --no-generate
b medium-b8-s2048-ckpt    --config medium --batch 8 --seq 2048 --dtype bfloat16 --grad-checkpoint on --no-generate
b large-b8-s2048-bf16     --config large  --batch 8 --seq 2048 --dtype bfloat16 --grad-checkpoint off on --no-generate
b xlarge-b4-s2048-bf16    --config xlarge --batch 4 --seq 2048 --dtype bfloat16 --grad-checkpoint on --no-generate
tar -C $w -czf $OUT/matrix.tar.gz .
