"""`llmlab eval` end to end through core.cli.main: run folder contents, bad input, Ctrl-C, crashes."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from core.cli import main
from core.eval import config as eval_config
from core.lm import demo as demo_mod
from core.mmmlu import extract_answer, load_csv, select_questions
from core.runs import iter_jsonl

RESULT_FIELDS = {"index", "subject", "question", "prompt", "gold", "pred", "correct", "output", "new_tokens"}
SUMMARY_FIELDS = {
    "kind", "status", "accuracy", "correct", "n", "total_seconds", "load_seconds", "generate_seconds", "tokens_generated",
    "tokens_per_second", "answer_counts", "mode", "batch_size", "dtype", "model", "data", "hardware", "optimizations",
}


# One demo model for the whole module instead of one per test.
pytestmark = pytest.mark.usefixtures("shared_demo_model")


def _read(run):
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    rows = list(iter_jsonl(run / "results.jsonl"))
    events = list(iter_jsonl(run / "events.jsonl"))
    return summary, rows, events


def _one_line_error(capsys, code):
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("llmlab: error: "), err
    return lines[0]


def test_demo_end_to_end_writes_every_file(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["eval", "--demo", "--max-new-tokens", "24", "--batch-size", "8", "--out", str(run)])
    assert code == 0
    out = capsys.readouterr()
    assert "RANDOM weights" in out.err and "accuracy" in out.out
    assert {p.name for p in run.iterdir()} >= {"config.json", "events.jsonl", "results.jsonl", "summary.json", "report.md"}

    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert config["kind"] == "eval" and config["demo"] is True and config["max_new_tokens"] == 24 and config["batch_size"] == 8
    summary, rows, events = _read(run)
    assert SUMMARY_FIELDS <= set(summary)
    assert summary["status"] == "completed" and summary["kind"] == "eval" and summary["mode"] == "generate"
    assert summary["n"] == len(rows) == 22  # every moral_scenarios question of the demo CSV
    assert summary["accuracy"] == pytest.approx(sum(r["correct"] for r in rows) / len(rows))
    assert summary["correct"] == sum(r["correct"] for r in rows)
    assert summary["tokens_generated"] == sum(r["new_tokens"] for r in rows)
    assert sum(summary["answer_counts"].values()) == len(rows)
    assert "RANDOM" in summary["model_label"] and summary["demo"] is True
    assert summary["hardware"]["cpu"] and any("batch" in o for o in summary["optimizations"])

    for row in rows:
        assert set(row) >= RESULT_FIELDS
        assert row["pred"] == extract_answer(row["output"])
        assert row["correct"] == (row["pred"] == row["gold"])
        assert row["prompt"].startswith("问题: ") and row["subject"] == "moral_scenarios"
    assert sorted(r["index"] for r in rows) == [q.index for q in select_questions(load_csv(eval_config.DEMO_DATA))[0]]

    types = [e["type"] for e in events]
    assert types[0] == "start" and types[-1] == "end" and types.count("progress") == 22  # one per question, as it ends
    start = events[0]
    assert start["kind"] == "eval" and start["pid"] == os.getpid() and start["total"] == 22 and start["run_dir"] == str(run)
    progress = [e for e in events if e["type"] == "progress"]
    assert [e["done"] for e in progress] == list(range(1, 23)) and all(e["total"] == 22 for e in progress)
    assert all("tokens_per_s" in e and "batch_size" in e for e in progress)
    assert events[-1]["status"] == "completed"
    assert any(e["type"] == "log" and "--limit 100" in e["message"] for e in events)

    report = (run / "report.md").read_text(encoding="utf-8")
    for heading in ("Accuracy", "Answer distribution", "## Hardware", "## Optimizations", "## First wrong answers", "Demo run"):
        assert heading in report


def test_logprob_mode_is_reported_as_its_own_mode(tmp_path):
    run = tmp_path / "lp"
    assert main(["eval", "--demo", "--mode", "logprob", "--subject", "all", "--limit", "9", "--batch-size", "4", "--out", str(run)]) == 0
    summary, rows, _ = _read(run)
    assert summary["mode"] == "logprob" and summary["n"] == 9 and summary["tokens_generated"] == 0
    assert summary["tokens_per_second"] is None
    assert summary["accuracy"] == pytest.approx(sum(r["correct"] for r in rows) / 9)
    for row in rows:
        assert row["pred"] == max(row["logprobs"], key=row["logprobs"].get)
        assert row["new_tokens"] == 0
    assert "logprob" in (run / "report.md").read_text(encoding="utf-8")


def _write_mmmlu_csv(path, count=7):
    questions, _ = select_questions(load_csv(eval_config.DEMO_DATA), "all", None)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["", "Question", "A", "B", "C", "D", "Answer", "Subject"])
        for n, q in enumerate(questions[:count]):
            writer.writerow([100 + n, q.question, *q.choices.values(), q.gold, "moral_scenarios"])


def test_local_model_and_csv_match_a_plain_generate_loop(tmp_path):
    """What `llmlab eval` reports for a local model is what a per-question model.generate gives."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = demo_mod.ensure_demo_model()  # a saved Qwen2 folder like any local checkpoint
    data = tmp_path / "mmlu_local.csv"
    _write_mmmlu_csv(data)
    run = tmp_path / "local"
    args = ["eval", "--model", str(model_dir), "--data", str(data), "--max-new-tokens", "20", "--batch-size", "3",
            "--dtype", "fp32", "--threads", "1", "--out", str(run)]
    assert main(args) == 0
    summary, rows, _ = _read(run)
    assert summary["model"] == str(model_dir) and summary["data"] == str(data) and summary["n"] == 7

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    by_index = {r["index"]: r for r in rows}
    for q in select_questions(load_csv(data), "moral_scenarios", 100)[0]:
        enc = tokenizer(q.prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=20)
        reply = tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        assert by_index[q.index]["output"] == reply
        assert by_index[q.index]["pred"] == extract_answer(reply)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--model", "{tmp}/no-such-model", "--data", "{tmp}/ok.csv"], "does not exist"),
        (["--model", "Qwen/Qwen2.5-0.5B"], "--demo"),
        (["--data", "openai/MMMLU", "--model", "{model}"], "--demo"),
        (["--data", "{tmp}/missing.csv", "--model", "{model}"], "does not exist"),
        (["--data", "{tmp}/cols.csv", "--model", "{model}"], "lacks column(s) D, Subject"),
        (["--data", "{tmp}/gbk.csv", "--model", "{model}"], "not UTF-8"),
        (["--data", "{tmp}/ok.csv", "--model", "{model}", "--subject", "astronomy"], "one of: moral_scenarios"),
        (["--demo", "--batch-size", "zero"], "batch-size"),
        (["--demo", "--out", "{tmp}"], "already exists and is not empty"),
        (["--demo", "--model", "x/y"], "--demo brings its own model"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, expected):
    (tmp_path / "cols.csv").write_text(",Question,A,B,C,Answer\n0,q,a,b,c,A\n", encoding="utf-8")
    (tmp_path / "gbk.csv").write_bytes(",Question,A,B,C,D,Answer,Subject\n0,问题,是,否,对,错,A,moral_scenarios\n".encode("gbk"))
    _write_mmmlu_csv(tmp_path / "ok.csv", 2)
    model = demo_mod.ensure_demo_model()
    argv = ["eval"] + [a.format(tmp=tmp_path, model=model) for a in args]
    line = _one_line_error(capsys, main(argv))
    assert expected in line


def test_default_command_fails_fast_offline(tmp_path):
    """No hub: the bare default must end in seconds with one line (subprocess, as a user runs it)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LLMLAB_RUNS_DIR": str(tmp_path / "runs")}
    done = subprocess.run([sys.executable, "-m", "core", "eval"], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--demo" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()  # nothing left behind


def test_out_of_memory_at_batch_one_is_a_usage_error_and_a_failed_run(tmp_path, capsys, monkeypatch):
    import core.lm.engine as engine

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(engine, "_generate_batch", no_memory)
    run = tmp_path / "oom"
    assert main(["eval", "--demo", "--batch-size", "4", "--max-new-tokens", "4", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("llmlab: error: out of GPU memory even with batch size 1")
    summary, _, events = _read(run)
    assert summary["status"] == "failed" and "batch size 1" in summary["error"]
    logs = [e["message"] for e in events if e["type"] == "log"]
    assert any("retrying with batch size 2" in m for m in logs) and any("retrying with batch size 1" in m for m in logs)


def test_ctrl_c_stops_at_the_next_step_keeping_finished_questions_and_exits_130(tmp_path, monkeypatch):
    import core.lm.engine as engine

    real = engine._generate_batch
    calls = []

    def interrupted_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-batch, as a user's Ctrl-C would
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "_generate_batch", interrupted_once)
    run = tmp_path / "stopped"
    assert main(["eval", "--demo", "--batch-size", "5", "--max-new-tokens", "4", "--out", str(run)]) == 130
    summary, rows, events = _read(run)
    # Only the rows that had ended by the first step are kept; no question waits for the batch's slowest row.
    assert summary["status"] == "stopped" and summary["n"] == len(rows) < 5 and summary["total"] == 22
    assert all(r["new_tokens"] <= 1 for r in rows)
    assert events[-1] == {**events[-1], "type": "end", "status": "stopped"}
    assert any("stopping at the next generation step" in e.get("message", "") for e in events)


def test_a_crash_is_recorded_as_failed_and_raised(tmp_path, monkeypatch):
    import core.lm.engine as engine

    def broken(*args, **kwargs):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(engine, "_generate_batch", broken)
    run = tmp_path / "crash"
    with pytest.raises(RuntimeError, match="kernel exploded"):
        main(["eval", "--demo", "--max-new-tokens", "4", "--out", str(run)])
    summary, _, events = _read(run)
    assert summary["status"] == "failed" and summary["error"] == "RuntimeError: kernel exploded"
    assert events[-1]["status"] == "failed"


def test_eval_cli_module_stays_light(tmp_path):
    code = ("import sys; from core.commands import build_command; from core.kinds import get; build_command(get('eval')); "
            "print(sorted(m for m in ('torch', 'transformers', 'pandas', 'textual') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=os.getcwd())
    assert done.stdout.strip() == "[]"
