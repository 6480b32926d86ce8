#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian/Ubuntu machine (Python >= 3.10): system packages when root
# (bubblewrap and libseccomp2 for the sandbox, shellcheck, OpenBLAS for MLX's CPU path, man-db/groff for the offline
# language corpus), then a virtual environment in .venv with the project and its extras.
# Usage: bash scripts/setup.sh            (quiet; prints one line per step on stderr)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
log() { printf 'setup: %s\n' "$*" >&2; }

need_apt=()
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
command -v shellcheck >/dev/null || need_apt+=(shellcheck)
command -v setpriv >/dev/null || need_apt+=(util-linux)
ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || need_apt+=(libseccomp2)   # the sandbox's seccomp filter
ls /usr/lib/*-linux-gnu/openblas-pthread/libblas.so.3 >/dev/null 2>&1 || need_apt+=(libopenblas0-pthread)
command -v man >/dev/null || need_apt+=(man-db)
command -v groff >/dev/null || need_apt+=(groff-base)
"$PY" -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${need_apt[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    log "missing system packages: ${need_apt[*]}; install them with: sudo apt-get install ${need_apt[*]}"
  fi
fi

# Chromium only serves the results-site browser test (which skips without it): its install may fail
# without failing the set-up.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "installing chromium (apt; for the results-site browser test)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 || log "chromium did not install; the browser test will skip"
fi

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.harness-setup
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing the project and its extras into .venv (pip)"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  # the torch extra is the comparison twin only (pinned in pyproject.toml to the build it is tested with)
  .venv/bin/python -m pip install -q -e ".[cpu,test,torch]" 2>&1 | grep -v '^WARNING: Location' >&2 || true
  .venv/bin/python -c 'import mlx.core, tokenizers, bashlex, tree_sitter_bash, torch' || { log "pip install failed"; exit 1; }
  echo "$want" > "$stamp"
fi
log "ready (.venv/bin/harness)"
