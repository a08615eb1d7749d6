#!/usr/bin/env bash
# Set up ./.venv for llmlab: torch first (an existing CUDA build is reused), then llmlab itself.
#   scripts/bootstrap.sh         runtime dependencies
#   scripts/bootstrap.sh --dev   plus the test tools
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extra=""
[ "${1:-}" = "--dev" ] && extra="[dev]"

if [ ! -x .venv/bin/python ]; then
  # --system-site-packages lets a GPU box's preinstalled CUDA torch serve the venv.
  "$PY" -m venv --system-site-packages .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # Pinned so pip takes the local CPU wheel where there is one instead of several GB of CUDA packages;
  # on a GPU box install your CUDA build of torch before running this.
  .venv/bin/python -m pip install -q "torch==2.13.0"
fi
.venv/bin/python -m pip install -q -e ".${extra}" 2>&1 | grep -v -E "^(WARNING: Location|  )" || true
.venv/bin/python -c "import core, torch, transformers" \
  || { echo "bootstrap: llmlab did not install cleanly; see the pip output above" >&2; exit 1; }
