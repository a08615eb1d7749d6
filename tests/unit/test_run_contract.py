"""Every kind's run folder follows the one contract of core/lifecycle.py, and a new kind slots in by registration."""

from __future__ import annotations

import json
import os

import pytest

import core.kinds
from core.cli import main
from core.runs import CONFIG, ERROR, EVENTS, REPORT, SUMMARY, iter_jsonl, read_json
from core.synthetic import bookcorpus_like_rows

COMMON_SUMMARY = {"kind", "status", "started", "total_seconds", "hardware", "optimizations", "error", "run_dir"}

pytestmark = pytest.mark.usefixtures("shared_demo_model")


def assert_contract(run, kind: str, status: str = "completed") -> dict:
    config, summary = read_json(run / CONFIG), read_json(run / SUMMARY)
    events = list(iter_jsonl(run / EVENTS))
    assert config["kind"] == kind
    assert COMMON_SUMMARY <= set(summary) and summary["kind"] == kind and summary["status"] == status
    assert events[0]["type"] == "start" and events[0]["kind"] == kind and events[0]["pid"] == os.getpid()
    assert events[0]["run_dir"] == str(run) == summary["run_dir"]
    assert events[-1]["type"] == "end" and events[-1]["status"] == status
    assert events[-1]["total_seconds"] == summary["total_seconds"]
    assert [e["elapsed"] for e in events] == sorted(e["elapsed"] for e in events)  # one monotonic clock
    assert isinstance(summary["optimizations"], list) and summary["hardware"]["cpu"]
    assert (run / REPORT).read_text(encoding="utf-8").startswith("#")
    return summary


def _corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(bookcorpus_like_rows(80, seed=1)) + "\n", encoding="utf-8")
    return path


def pretrain_args(tmp_path, out):
    return ["pretrain", "--data", str(_corpus(tmp_path)), "--model-size", "tiny", "--tokenizer", "gpt2-bundled",
            "--rows", "60", "--eval-rows", "10", "--epochs", "1", "--block-size", "32", "--batch-size", "8",
            "--out", str(out)]


EVAL_ARGS = ["eval", "--demo", "--limit", "4", "--max-new-tokens", "4"]

# Every registered kind at demo size; a kind added to core.kinds without a line here fails the test below.
DEMO_ARGS = {
    "tokenizer": lambda tmp: ["tokenizer", "train", "--demo", "--rows", "400", "--eval-rows", "50", "--vocab-size", "400"],
    "pretrain": lambda tmp: pretrain_args(tmp, tmp / "unused")[:-2],
    "finetune": lambda tmp: ["finetune", "--demo", "--epochs", "1", "--val-per-subject", "1", "--test-per-subject", "1",
                             "--shuffle-copies", "1", "--test-max-new-tokens", "4", "--max-length", "96"],
    "eval": lambda tmp: EVAL_ARGS,
    "squad": lambda tmp: ["squad", "--demo", "--limit", "3", "--max-new-tokens", "4"],
    "math": lambda tmp: ["math", "--demo", "--limit", "3", "--max-new-tokens", "4"],
    "vote": lambda tmp: ["vote", str(tmp / "e1"), str(tmp / "e2")],
}


def test_every_registered_kind_writes_the_contract_at_demo_size(tmp_path):
    from core.kinds import kinds

    assert set(kinds()) == set(DEMO_ARGS), "a registered kind has no demo-size line in DEMO_ARGS"
    for name in ("e1", "e2"):  # what the vote votes over
        assert main([*EVAL_ARGS, "--out", str(tmp_path / name)]) == 0
    for kind, args in DEMO_ARGS.items():
        out = tmp_path / f"run-{kind}"
        assert main([*args(tmp_path), "--out", str(out)]) == 0, kind
        summary = assert_contract(out, kind)
        assert summary["error"] is None and summary["world_size"] == 1, kind


@pytest.mark.parametrize("kind", ["pretrain", "eval"])
def test_a_crash_in_either_kind_leaves_error_txt_and_status_failed(tmp_path, monkeypatch, kind):
    import core.eval.run as eval_run
    import core.pretrain.run as pretrain_run

    def explode(*args, **kwargs):
        raise RuntimeError("boom in the middle")

    target = (pretrain_run.PretrainJob, "_train") if kind == "pretrain" else (eval_run.EvalJob, "_answer")
    monkeypatch.setattr(*target, explode)
    out = tmp_path / "run"
    args = pretrain_args(tmp_path, out) if kind == "pretrain" else [*EVAL_ARGS, "--out", str(out)]
    with pytest.raises(RuntimeError, match="boom in the middle"):
        main(args)
    summary = assert_contract(out, kind, status="failed")
    assert summary["error"] == "RuntimeError: boom in the middle"
    assert "Traceback" in (out / ERROR).read_text(encoding="utf-8")


@pytest.fixture()
def echo_registered(monkeypatch):
    """The made-up kind in tests/unit/echo_kind.py, added to the one list of kinds and nowhere else."""
    monkeypatch.setattr(core.kinds, "PACKAGES", (*core.kinds.PACKAGES, "echo_kind"))
    core.kinds.kinds.cache_clear()
    yield
    core.kinds.kinds.cache_clear()


@pytest.mark.usefixtures("echo_registered")
def test_a_new_kind_slots_in_through_the_registry(tmp_path, capsys):
    from tui.runinfo import figures, read_run

    out = tmp_path / "echo"
    assert main(["echo", "--text", "abc", "--times", "2", "--out", str(out)]) == 0
    assert (out / "echo.txt").read_text() == "abc abc"
    summary = assert_contract(out, "echo")
    assert summary["chars"] == 7 and summary["optimizations"] == ["none needed"]
    assert json.loads((out / CONFIG).read_text())["text"] == "abc"
    run = read_run(out)
    assert run.kind == "echo" and run.headline == "7 chars" and dict(figures("echo", summary))["chars"] == "7"
    assert main(["echo", "--times", "0"]) == 2  # its own validation, one line, exit 2
    assert "--times must be at least 1" in capsys.readouterr().err
    assert main(["--help"]) == 0 and "echo" in capsys.readouterr().out
