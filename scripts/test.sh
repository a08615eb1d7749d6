#!/usr/bin/env bash
# Set up the venv with test tools and run the whole offline test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --dev
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
workers=$(.venv/bin/python -c "import os; print(min(4, os.cpu_count() or 1))")
set +e
.venv/bin/python -m pytest -n "$workers" -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; failing on purpose" >&2
  exit 1
fi
exit "$rc"
