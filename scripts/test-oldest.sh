#!/usr/bin/env bash
# Two checks in one fresh venv: (1) llmlab installed the way users install it, from the built wheel (not editable),
# here with the oldest versions it supports (scripts/oldest-constraints.txt: transformers 5.17, the GPU box's, ...);
# (2) the engine tests whose paths depend on library versions (eval batched == batch-1 and streaming; the
# pretraining loop's speed paths; LoRA fine-tuning end to end, over a 4-bit and an 8-bit base and through a chat
# template; two processes training like one) under those versions.
# The wheel is then used from outside the checkout, so only the installed package is importable: `llmlab --help`,
# `--version`, every kind's --demo at its smallest, and the app built.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv-oldest
quiet() { "$@" 2>&1 | grep -v -E "^(WARNING: Location|  )" || true; }
rm -rf "$VENV" dist-ci
"$PY" -m venv "$VENV"
quiet "$PY" -m pip wheel . --no-deps -q -w dist-ci
quiet "$VENV/bin/python" -m pip install -q "torch==2.13.0"
wheel=$(ls dist-ci/llmlab-*.whl)
quiet "$VENV/bin/python" -m pip install -q "$wheel[dev]" -c scripts/oldest-constraints.txt
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

# (1) the installed wheel, used from an empty folder
work=$(mktemp -d -t llmlab-wheel-XXXXXX)
trap 'rm -rf "$work" dist-ci' EXIT
(
  cd "$work"
  export LLMLAB_RUNS_DIR="$work/runs" LLMLAB_CACHE_DIR="$work/cache"
  llmlab="$OLDPWD/$VENV/bin/llmlab"
  step() { echo "wheel: llmlab $*" >&2; "$llmlab" "$@" > last.log 2>&1 || { cat last.log >&2; echo "wheel: failed: llmlab $*" >&2; exit 1; }; }
  step --help
  step --version
  grep -q "llmlab, version" last.log || { echo "wheel: --version printed no version" >&2; exit 1; }
  step tokenizer train --demo --rows 400 --eval-rows 50 --vocab-size 400
  step pretrain --demo --rows 200 --eval-rows 20 --epochs 1 --sample-tokens 4
  step finetune --demo --epochs 1 --val-per-subject 1 --test-per-subject 1 --shuffle-copies 1 --test-max-new-tokens 4
  step eval --demo --limit 4 --max-new-tokens 4 --out "$work/runs/e1"
  step eval --demo --limit 4 --max-new-tokens 4 --batch-size 2 --out "$work/runs/e2"
  step squad --demo --limit 3 --max-new-tokens 4
  step math --demo --limit 3 --max-new-tokens 4
  step vote "$work/runs/e1" "$work/runs/e2"
  "$OLDPWD/$VENV/bin/python" -c "import core, tui.app; assert 'site-packages' in core.__file__, core.__file__; tui.app.LlmlabApp()"
  done=$(grep -l '"status": "completed"' "$work"/runs/*/summary.json | wc -l)
  [ "$done" -eq 8 ] || { echo "wheel: expected 8 completed runs, found $done" >&2; exit 1; }
  echo "wheel: the installed wheel ran --help, --version, every kind's demo, and built the app" >&2
)

# (2) the version-dependent engine tests
workers=$("$VENV/bin/python" -c "import os; print(min(4, os.cpu_count() or 1))")
set +e
"$VENV/bin/python" -m pytest -n "$workers" -q -p no:cacheprovider \
  tests/unit/test_eval_engine.py tests/unit/test_eval_streaming.py tests/unit/test_pretrain_speed_paths.py \
  tests/unit/test_finetune_run.py tests/unit/test_quantized.py tests/unit/test_chat_template.py \
  "tests/unit/test_distributed.py::test_two_processes_train_step_for_step_like_one_and_write_one_run_folder" \
  -k "not (bad_options or data_is_required or resume_refuses or split_files or hand_count or non_finite or learning_rate_warms or token_cache_is_listed or gptq or chat_without)" "$@"
# (-k leaves out what no library version changes: option refusals, split files, schedules, caches, NaN guards)
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test-oldest.sh: pytest collected no tests; failing on purpose" >&2
  exit 1
fi
exit "$rc"
