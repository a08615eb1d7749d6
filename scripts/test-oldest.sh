#!/usr/bin/env bash
# The engine tests whose paths depend on library versions (eval batched == batch-1 and streaming; the
# pretraining loop's speed paths; LoRA fine-tuning end to end, over a 4-bit and an 8-bit base and through a chat
# template; two processes training like one)
# in a second venv with the oldest versions llmlab supports: scripts/oldest-constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv-oldest
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q "torch==2.13.0" 2>&1 | grep -v -E "^(WARNING: Location|  )" || true
"$VENV/bin/python" -m pip install -q -e ".[dev]" -c scripts/oldest-constraints.txt 2>&1 | grep -v -E "^(WARNING: Location|  )" || true
"$VENV/bin/python" - <<'PY'
import sys
from importlib.metadata import version
want = {l.split("==")[0]: l.split("==")[1].strip() for l in open("scripts/oldest-constraints.txt") if "==" in l}
got = {name: version(name).split("+")[0] for name in want}
wrong = {n: got[n] for n in want if got[n] != want[n]}
if wrong:
    sys.exit(f"test-oldest.sh: expected {want}, the venv has {wrong}")
print("oldest versions:", ", ".join(f"{n} {v}" for n, v in got.items()))
PY
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
workers=$("$VENV/bin/python" -c "import os; print(min(4, os.cpu_count() or 1))")
set +e
"$VENV/bin/python" -m pytest -n "$workers" -q -p no:cacheprovider \
  tests/unit/test_eval_engine.py tests/unit/test_eval_streaming.py tests/unit/test_pretrain_speed_paths.py \
  tests/unit/test_finetune_run.py tests/unit/test_quantized.py tests/unit/test_chat_template.py \
  "tests/unit/test_distributed.py::test_two_processes_train_step_for_step_like_one_and_write_one_run_folder" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test-oldest.sh: pytest collected no tests; failing on purpose" >&2
  exit 1
fi
exit "$rc"
