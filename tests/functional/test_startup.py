"""The app must start fast: building it loads no torch or transformers."""

from __future__ import annotations

import subprocess
import sys


def test_building_the_app_loads_no_ml_libraries(tmp_path):
    code = (
        "from tui.app import LlmlabApp\n"
        "LlmlabApp()\n"
        "import sys\n"
        "print(','.join(m for m in ('torch', 'transformers', 'datasets', 'pynvml') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[2]),
                              "LLMLAB_RUNS_DIR": str(tmp_path / "runs"), "PATH": ""}, check=True)
    assert out.stdout.strip() == ""
