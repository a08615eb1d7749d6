#!/usr/bin/env bash
# GPTQ checkpoints (the `gptq` extra: GPT-QModel and optimum) tested on the CPU in a venv of their own, layered on
# .venv's packages (a .pth line), so the main venv keeps its numpy (GPT-QModel 7.6 pins 2.2.6) and peft never
# imports GPT-QModel (~14 s) for the other tests' LoRA. tests/unit/test_gptq.py quantizes a tiny model, trains a
# LoRA over it, evaluates the adapter and checks that export refuses it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || scripts/bootstrap.sh --dev
VENV=.venv-gptq
[ -x "$VENV/bin/python" ] || "$PY" -m venv --system-site-packages "$VENV"   # as .venv (scripts/bootstrap.sh)
main_site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
own_site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$main_site" > "$own_site/zz-llmlab-main-venv.pth"   # after its own packages: what it installs wins
"$VENV/bin/python" -m pip install -q -e ".[gptq]" 2>&1 | grep -v -E "^(WARNING: Location|  )" || true
"$VENV/bin/python" -c "import gptqmodel, optimum" 2>/dev/null \
  || { echo "test-gptq.sh: the gptq extra did not install; see the pip output above" >&2; exit 1; }
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 GPTQMODEL_CPU_WORKERS=2
out=$("$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/unit/test_gptq.py "$@" 2>&1) && rc=0 || rc=$?
echo "$out" | tail -n 15
if [ "$rc" -eq 0 ] && ! echo "$out" | grep -q " passed"; then
  echo "test-gptq.sh: the GPTQ test did not run (skipped?); failing on purpose" >&2
  exit 1
fi
exit "$rc"
