"""Both benches run end to end at tiny sizes on a CPU and write every figure their tables need.

Each bench starts child processes (one per engine run), so these take ~30-60 s each on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

PRETRAIN_FIGURES = ("total_seconds", "process_seconds", "train_seconds", "tokens_per_second", "mfu",
                    "peak_memory_mib", "final_loss", "heldout_loss", "total_steps", "n_params")
EVAL_FIGURES = ("total_seconds", "process_seconds", "generate_seconds", "new_tokens", "tokens_per_second",
                "peak_memory_mib", "accuracy", "batch_size", "dtype")


def _run_bench(script: str, args: list[str], tmp_path: Path) -> dict:
    env = dict(os.environ, LLMLAB_BENCH_CACHE=str(tmp_path / "bench-cache"), LLMLAB_BENCH_WORK=str(tmp_path / "work"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, f"bench/{script}", "--smoke", "--results-dir", str(results), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = list(results.glob("*.json"))
    assert len(files) == 1, proc.stdout[-2000:]
    assert "-cpu-" in files[0].name or "nvidia" in files[0].name
    return json.loads(files[0].read_text(encoding="utf-8"))


def _check_figures(run: dict, figures: tuple[str, ...]) -> None:
    assert not run.get("error"), run.get("error")
    missing = [f for f in figures if f not in run]
    assert not missing, f"missing figures {missing}"
    for key in ("total_seconds", "process_seconds"):
        assert run[key] > 0


def test_pretrain_bench_smoke(tmp_path):
    payload = _run_bench("pretrain.py", ["--rows", "64", "--eval-rows", "16"], tmp_path)
    block = payload["scales"][0]
    for name in ("baseline", "llmlab_cold", "llmlab_warm"):
        _check_figures(block[name], PRETRAIN_FIGURES)
        assert block[name]["heldout_loss"] > 0 and block[name]["final_loss"] > 0
    assert block["llmlab_cold"]["token_cache_hit"] is False
    assert block["llmlab_warm"]["token_cache_hit"] is True
    assert payload["facts"]["torch"] and "options" in payload and payload["notes"]


def test_eval_bench_smoke(tmp_path):
    payload = _run_bench("eval.py", ["--questions", "4", "--baseline-questions", "2", "--max-new-tokens", "8",
                                     "--fp32-check", "1"], tmp_path)
    block = payload["scales"][0]
    for name in ("baseline", "llmlab"):
        _check_figures(block[name], EVAL_FIGURES)
    assert block["llmlab"]["new_tokens"] > 0
    assert block["baseline"]["scaled_from_questions"] == 2
    assert block["agreement"]["compared"] == 2
    assert payload["fp32_check"]["compared"] == 1

