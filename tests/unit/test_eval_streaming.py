"""An eval run writes each question's line as its row ends, and lists only the speed-ups that ran."""

from __future__ import annotations

import pytest

from core.eval.config import EvalConfig
from core.eval.run import run_eval
from core.runs import iter_jsonl

pytestmark = pytest.mark.usefixtures("shared_demo_model")


def test_results_stream_while_the_one_batch_still_generates(tmp_path):
    run = tmp_path / "run"
    seen = []  # (done, total, lines in results.jsonl) at each progress event

    def progress(event):
        if event.type == "progress":
            seen.append((event.done, event.total, len(list(iter_jsonl(run / "results.jsonl")))))

    summary = run_eval(EvalConfig(demo=True, max_new_tokens=48, batch_size="auto", out=str(run)), progress=progress)
    assert summary["status"] == "completed" and summary["batch_size"] == summary["n"] == 22  # one batch of every question
    assert [done for done, _, _ in seen] == list(range(1, 23))
    assert all(lines == done for done, _, lines in seen)  # the line is on disk before its progress event
    first = list(iter_jsonl(run / "results.jsonl"))[0]
    assert first["new_tokens"] < max(r["new_tokens"] for r in iter_jsonl(run / "results.jsonl"))


@pytest.fixture()
def dropped_rows(monkeypatch):
    """How often a running batch's KV cache really dropped finished rows (independent of the engine's own count)."""
    from transformers.cache_utils import DynamicCache

    calls = [0]
    real = DynamicCache.batch_select_indices

    def counting(self, indices):
        calls[0] += 1
        return real(self, indices)

    monkeypatch.setattr(DynamicCache, "batch_select_indices", counting)
    return calls


@pytest.mark.parametrize("options", [
    {"batch_size": 1}, {"batch_size": 8}, {"batch_size": 22}, {"batch_size": 8, "free_finished": False},
    {"batch_size": 8, "static_cache": True}, {"batch_size": 8, "stop_at_answer": True}, {"batch_size": 8, "mode": "logprob"},
], ids=["b1", "b8", "one-batch", "keep-finished", "static", "stop-at-answer", "logprob"])
def test_optimizations_name_exactly_what_ran(tmp_path, options, dropped_rows):
    summary = run_eval(EvalConfig(demo=True, max_new_tokens=24, out=str(tmp_path / "run"), **options))
    opts = summary["optimizations"]
    batches = -(-22 // options["batch_size"])
    assert any(o.startswith("batched inference") for o in opts) == (options["batch_size"] > 1)
    assert ("prompts sorted by token length to cut padding" in opts) == (batches > 1 and options["batch_size"] > 1)
    assert any(o.startswith("finished rows dropped") for o in opts) == (dropped_rows[0] > 0)
    if options.get("free_finished") is False or options.get("static_cache") or options["batch_size"] == 1 or options.get("mode"):
        assert dropped_rows[0] == 0
    assert ("static KV cache" in opts) == bool(options.get("static_cache"))
    assert any("stop-at-answer" in o for o in opts) == bool(options.get("stop_at_answer"))
    assert any(o.startswith("log-prob scoring") for o in opts) == (options.get("mode") == "logprob")
    assert not any("bf16" in o or "compile" in o or "CUDA" in o for o in opts)  # fp32 on a CPU, no compile
