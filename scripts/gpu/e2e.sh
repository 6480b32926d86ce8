#!/usr/bin/env bash
# The end-to-end run on one GPU: pretrain (configs/pretrain-tiny-gpu.json) on the language corpus, fine-tune
# (configs/finetune-tiny-gpu.json) on the bash corpus, then sample completions for the task suite. The GPU
# machines have no bubblewrap, so scoring happens elsewhere: `harness eval --samples` on a CPU machine.
# Everything that comes back is in $OUT/e2e.tar.gz (reports, metrics, samples, logs).
# Usage (lent machine, MLX CUDA installed): bash scripts/gpu/e2e.sh DATA_TAR_XZ
#   DATA_TAR_XZ: `harness data` output (runs/gpu-data) as .tar.xz, documents.jsonl left out.
set -euo pipefail
python3 -c "import bashlex, jsonschema" 2>/dev/null || python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl
# PRETRAIN / FINETUNE (configs), TRAIN_ARGS (extra train arguments), N and MAX_TOKENS override the defaults
PRETRAIN=${PRETRAIN:-configs/pretrain-tiny-gpu.json} FINETUNE=${FINETUNE:-configs/finetune-tiny-gpu.json}
TRAIN_ARGS=${TRAIN_ARGS:-} N=${N:-10} MAX_TOKENS=${MAX_TOKENS:-256}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
work=/tmp/e2e; rm -rf "$work"; mkdir -p "$work/out"
python3 -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter='data')" "$1" "$work"
data=$work/gpu-data
h() { python3 -m harness.cli "$@"; }
t0=$(date +%s)
h train --config "$PRETRAIN" --data "$data" --out "$work/pretrain" --no-progress $TRAIN_ARGS 2>&1 | tee "$work/out/pretrain.log"
h train --config "$FINETUNE" --init "$work/pretrain" --data "$data" --out "$work/finetune" --no-progress $TRAIN_ARGS 2>&1 | tee "$work/out/finetune.log"
for run in pretrain finetune; do cp "$work/$run/report.json" "$work/out/train-$run.json"; cp "$work/$run/metrics.jsonl" "$work/out/train-$run.metrics.jsonl"; done
# pass@1 at a low temperature, pass@10 at a high one (Chen et al. 2021 sample that way), 10 samples per task each
for t in 0.2 0.8; do
  h generate --checkpoint "$work/finetune" --prompts fixtures/tasks --n "$N" --temperature $t --top-p 0.95 \
    --max-tokens "$MAX_TOKENS" --seed 0 --out "$work/out/samples-t$t.jsonl" --report "$work/out/generate-t$t.json" 2>&1 | tail -n 3
done
echo "e2e wall seconds: $(( $(date +%s) - t0 ))" | tee "$work/out/wall.txt"
tar -C "$work/out" -czf "$OUT/e2e.tar.gz" .
ls -la "$work/out"
