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
# Needs .gpu/wheels (mlx-lm, bashlex, jsonschema and its dependencies as cp312 wheels); pass
# HARNESS_GIT_COMMIT=<sha> HARNESS_GIT_DIRTY=0 (the copied tree has no .git).
set -uo pipefail
part=${1:?usage: passk.sh ab|pick|bench PRESET...}; shift
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
*) echo "unknown part $part (ab, pick or bench)" >&2; exit 2 ;;
esac
