#!/usr/bin/env bash
# pass@k sampling speed on a lent GPU (MLX CUDA installed by ../shared/gpu/stage-mlx-cuda.sh's two steps), from
# the project root. Everything is written straight to $OUT, so what finished comes back if a call runs out.
#   ab PRESET...     the reference decoder at n = 1, 20, 100 rows (bf16, 256-token prompt + 256 new tokens):
#                    an older tree (TREE, default .gpu/old: `git archive <commit> reference | tar -x -C .gpu/old`)
#                    against this one with the prompt's cache copied per row (layout repeat) and shared (the
#                    default), and shared without attention (what attention costs)   -> $OUT/ab-PRESET.jsonl
#   pick PRESET...   the attention forms of reference.model.shared_prefix_attention (BATCH_ATTENTION) one layer
#                    alone and in whole decodes at n = 20, 100; the fastest on medium at n = 100 is what `bench`
#                    then uses (HARNESS_BATCH_ATTENTION)          -> $OUT/attn-micro.jsonl, $OUT/pick.jsonl
#   bench PRESET...  `harness bench --no-train --gen-n 1 20 100` with mlx, mlx-lm (BatchGenerator), the twin
#                    eager and with CUDA graphs, 2 warm-up + REPEATS (default 5) runs  -> $OUT/gen-passk-PRESET.json
#   kernels PRESET... reference.decode_kernels tested here, timed alone and in whole decodes against the written-out
#                    form                     -> $OUT/test-decode-kernels.log, attn-micro-kernels.jsonl, kernels-PRESET.jsonl
#   e2e              a tiny checkpoint trained here, then `harness eval --checkpoint --n 100 --generate-only`
#                    before/after               -> $OUT/eval-sampling-*.json (+ .samples.jsonl), train-*.json
# Needs .gpu/wheels (mlx-lm, bashlex, jsonschema and its dependencies as cp312 wheels); pass
# HARNESS_GIT_COMMIT=<sha> HARNESS_GIT_DIRTY=0 (the copied tree has no .git).
set -uo pipefail
part=${1:?usage: passk.sh ab|pick|flush|kernels|bench|e2e PRESET...}; shift
python3 -c "import mlx_lm, bashlex, jsonschema" 2>/dev/null || python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit,driver_version --format=csv > $OUT/nvidia-smi.csv
case $part in
ab)
  for p in "$@"; do
    o=$OUT/ab-$p.jsonl
    python3 scripts/gpu/passk_ab.py $p --tree ${TREE:-.gpu/old} --label old --runs 3 | tee -a $o
    python3 scripts/gpu/passk_ab.py $p --label new --layout repeat --runs 3 | tee -a $o
    python3 scripts/gpu/passk_ab.py $p --label new --layout shared | tee -a $o
    python3 scripts/gpu/passk_ab.py $p --label new --layout shared --ablate noattn --n 20 100 --runs 3 | tee -a $o
  done
  ;;
pick)
  # the attention forms of the shared layout, one layer alone (scripts/gpu/attn_micro.py) and whole decodes at
  # n = 20 and 100; the form with the highest medium n = 100 median goes to /tmp/attn_choice for `bench`
  python3 scripts/gpu/attn_micro.py --presets "$@" | tee $OUT/attn-micro.jsonl
  for f in matmul mulsum mulsum16; do
    for p in "$@"; do
      HARNESS_BATCH_ATTENTION=$f python3 scripts/gpu/passk_ab.py $p --label "attn-$f" --n 20 100 --runs 3 \
        | tee -a $OUT/pick.jsonl
    done
  done
  python3 - "$OUT/pick.jsonl" <<'PY' | tee /tmp/attn_choice
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
best = {}
for r in rows:
    if r["n"] == 100:
        best.setdefault(r["preset"], []).append((r["median"], r["label"][5:]))
p = "medium" if "medium" in best else next(iter(best))
print(max(best[p])[1])
PY
  ;;
flush)
  # the shared layout with its new keys/values in small per-call buffers written once per call, at 4 and 8
  # steps per call, then `harness bench` of MLX alone with the default (8)        -> $OUT/flush-*.jsonl, $OUT/gen-mlx-*.json
  for p in "$@"; do
    for t in 4 8; do
      HARNESS_BATCH_TOKENS_PER_CALL=$t python3 scripts/gpu/passk_ab.py $p --label "flush-tpc$t" --runs 5 | tee -a $OUT/flush-$p.jsonl
    done
  done
  for p in "$@"; do
    python3 -m harness.cli bench --config $p --no-train --batch 1 --seq 512 --gen-prompt 256 --gen-tokens 256 \
      --gen-n 1 20 100 --warmup 2 --repeats 5 --out $OUT/gen-mlx-$p.json 2>&1 | tail -n 3
  done
  ;;
bench)
  [ -s /tmp/attn_choice ] && export HARNESS_BATCH_ATTENTION=$(cat /tmp/attn_choice)
  echo "HARNESS_BATCH_ATTENTION=${HARNESS_BATCH_ATTENTION:-default}"
  for p in "$@"; do
    python3 -m harness.cli bench --config $p --no-train --batch 1 --seq 512 --gen-prompt 256 --gen-tokens 256 \
      --gen-n 1 20 100 --mlx-lm --twin --torch-compile --warmup 2 --repeats ${REPEATS:-5} \
      --out $OUT/gen-passk-$p.json 2>&1 | tail -n 20
  done
  ;;
kernels)
  # reference.decode_kernels: its tests on this GPU, one layer's step timed (attn_micro), then whole decodes with
  # the kernels and with the written-out form (HARNESS_DECODE_KERNELS=0), 5 runs each; if the tests fail, the
  # rest of this call (and of the lease: /tmp/kernels_off) measures without the kernels
  python3 -m pytest -q -p no:cacheprovider tests/test_decode_kernels.py -k "kernels_match or kernels_give" 2>&1 | tee $OUT/test-decode-kernels.log
  [ ${PIPESTATUS[0]} -eq 0 ] || { echo "kernel tests FAILED: no kernels from here on"; touch /tmp/kernels_off; }
  [ -e /tmp/kernels_off ] && export HARNESS_DECODE_KERNELS=0
  [ -n "${NOMICRO:-}" ] || python3 scripts/gpu/attn_micro.py --presets "$@" | tee $OUT/attn-micro-kernels.jsonl
  # KN (rows, default "1 20 100") and RUNS (default 5) shorten it; TPC16=1 adds 16 steps per call
  for p in "$@"; do
    python3 scripts/gpu/passk_ab.py $p --label kernels --n ${KN:-1 20 100} --runs ${RUNS:-5} | tee -a $OUT/kernels-$p.jsonl
    HARNESS_DECODE_KERNELS=0 python3 scripts/gpu/passk_ab.py $p --label written-out --n ${KN:-1 20 100} \
      --runs ${RUNS:-5} | tee -a $OUT/kernels-$p.jsonl
    [ -z "${TPC16:-}" ] || HARNESS_BATCH_TOKENS_PER_CALL=16 python3 scripts/gpu/passk_ab.py $p --label kernels-tpc16 \
      --n 20 100 --runs 3 | tee -a $OUT/kernels-$p.jsonl
  done
  ;;
e2e)
  # end to end: a tiny checkpoint trained here on DATA (default runs/demo/data, carried: `harness data` output),
  # then `harness eval --checkpoint --n 100 --generate-only` (no sandbox on this machine; the samples are scored
  # elsewhere with --samples): after = this tree's decoder, before = HARNESS_BATCH_LAYOUT=repeat with the
  # kernels off (the per-row layout the issue measured) on the first LIMIT (default 30) tasks, and after on them
  [ -e /tmp/kernels_off ] && export HARNESS_DECODE_KERNELS=0
  data=${DATA:-runs/demo/data}; ck=/tmp/passk-ck
  h() { python3 -m harness.cli "$@"; }
  if [ ! -e $ck/finetune/latest ]; then
    h train --config tiny --data $data --out $ck/pretrain --stage pretrain --steps 300 --batch-size 32 --seq-len 1024 \
      --dtype bfloat16 --eval-every 100 --save-every 300 --no-progress 2>&1 | tail -n 4
    h train --config tiny --init $ck/pretrain --data $data --out $ck/finetune --steps 150 --batch-size 16 \
      --seq-len 1024 --dtype bfloat16 --eval-every 50 --save-every 150 --no-progress 2>&1 | tail -n 4
    cp $ck/pretrain/report.json $OUT/train-pretrain.json; cp $ck/finetune/report.json $OUT/train-finetune.json
  fi
  s="--checkpoint $ck/finetune --n 100 --temperature 0.8 --top-p 0.95 --max-tokens 256 --seed 0 --generate-only"
  h eval $s --out $OUT/eval-sampling-after.json 2>&1 | tail -n 5
  HARNESS_BATCH_LAYOUT=repeat HARNESS_DECODE_KERNELS=0 h eval $s --limit ${LIMIT:-30} \
    --out $OUT/eval-sampling-before-limit${LIMIT:-30}.json 2>&1 | tail -n 5
  h eval $s --limit ${LIMIT:-30} --out $OUT/eval-sampling-after-limit${LIMIT:-30}.json 2>&1 | tail -n 5
  ;;
*) echo "unknown part $part (ab, pick, flush, kernels, bench or e2e)" >&2; exit 2 ;;
esac
