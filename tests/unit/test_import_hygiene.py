"""The engine must never pull in the UI, and the CLI's help must not pull in torch."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _loaded(statement: str, modules: tuple[str, ...], tmp_path) -> list[str]:
    code = f"{statement}\nimport sys\nprint(','.join(m for m in {modules!r} if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


@pytest.mark.parametrize(
    "statement",
    ["import core", "import core.cli", "import core.runs", "import core.hardware", "import core.commands", "import core.runlog"],
)
def test_engine_imports_do_not_load_the_tui(statement, tmp_path):
    assert _loaded(statement, ("textual", "textual_plotext", "tui"), tmp_path) == []


def test_cli_module_does_not_load_torch(tmp_path):
    assert _loaded("import core.cli", ("torch", "transformers", "datasets"), tmp_path) == []
