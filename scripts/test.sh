#!/usr/bin/env bash
# Set up the venv with test tools, check the import contract and style, then run the whole offline test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --dev
# The split enforced, not only tested: core never imports tui (import-linter), and the style check.
.venv/bin/lint-imports --no-cache
.venv/bin/ruff check --quiet .
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
workers=$(.venv/bin/python -c "import os; print(min(4, os.cpu_count() or 1))")
set +e
# loadgroup: the tests of one `llmlab serve` server (xdist_group "serve") share a worker and that server.
.venv/bin/python -m pytest -n "$workers" --dist loadgroup -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; failing on purpose" >&2
  exit 1
fi
exit "$rc"
