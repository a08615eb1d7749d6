"""`llmlab eval --resume`: keyed result rows, torn lines, refusals when settings or data changed, SIGTERM."""

from __future__ import annotations

import csv
import json
import os
import signal

import pytest

from core.cli import main
from core.eval import config as eval_config
from core.lm import demo as demo_mod
from core.mmmlu import load_csv, select_questions
from core.runs import iter_jsonl, read_json

# One demo model for the whole module instead of one per test.
pytestmark = pytest.mark.usefixtures("shared_demo_model")


DEMO = ["eval", "--demo", "--subject", "all", "--limit", "8", "--max-new-tokens", "6", "--batch-size", "3"]


def write_csv(path, count):
    questions, _ = select_questions(load_csv(eval_config.DEMO_DATA), "all", None)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["", "Question", "A", "B", "C", "D", "Answer", "Subject"])
        for n, q in enumerate(questions[:count]):
            writer.writerow([n, q.question, *q.choices.values(), q.gold, "moral_scenarios"])


def rows_of(run):
    return list(iter_jsonl(run / "results.jsonl"))


def by_index(rows):
    return {r["index"]: (r["pred"], r["output"], r["new_tokens"]) for r in rows}


def snapshot(folder):
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("llmlab: error: "), err
    return lines[0]


def interrupt_first_batch(monkeypatch, sig):
    """Send `sig` the moment the first question of the first batch is answered, as a user's Ctrl-C would."""
    import core.lm.engine as engine

    real, calls = engine._generate_batch, []

    def interrupted_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            report, sent = kwargs["on_row"], []

            def report_then_signal(position, generation):
                report(position, generation)
                if not sent:
                    sent.append(1)
                    os.kill(os.getpid(), sig)  # the run stops at the next step; finished questions are kept

            kwargs["on_row"] = report_then_signal
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "_generate_batch", interrupted_once)


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_stopped_then_resumed_eval_matches_an_uninterrupted_one(tmp_path, monkeypatch, sig, code):
    assert main(DEMO + ["--out", str(tmp_path / "full")]) == 0
    full = rows_of(tmp_path / "full")

    run = tmp_path / "part"
    with monkeypatch.context() as m:
        interrupt_first_batch(m, sig)
        assert main(DEMO + ["--out", str(run)]) == code
    stopped = read_json(run / "summary.json")
    assert stopped["status"] == "stopped" and 1 <= stopped["n"] < 3 and stopped["stop_signal"] == sig
    kept = stopped["n"]

    assert main(["eval", "--resume", str(run)]) == 0
    rows = rows_of(run)
    assert len(rows) == len({r["index"] for r in rows}) == 8  # one row per question, none twice
    assert by_index(rows) == by_index(full)  # fp32: a resumed run answers exactly as an unbroken one
    summary = read_json(run / "summary.json")
    assert summary["status"] == "completed" and summary["n"] == summary["total"] == 8 and summary["reused_rows"] == kept
    assert summary["correct"] == sum(r["correct"] for r in rows) and summary["tokens_generated"] == sum(r["new_tokens"] for r in rows)
    events = list(iter_jsonl(run / "events.jsonl"))
    types = [e["type"] for e in events]
    assert types.count("start") == 2 and types.count("end") == 2 and types[-1] == "end"
    resume = next(e for e in events if e["type"] == "resume")
    assert resume["reused"] == kept and resume["remaining"] == 8 - kept
    after = [e["done"] for e in events[types.index("resume"):] if e["type"] == "progress"]
    assert after[0] > kept and after[-1] == 8
    assert events[-1]["status"] == "completed"


def test_a_torn_last_line_and_duplicates_are_dropped_and_rerun(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(DEMO + ["--out", str(run)]) == 0
    original = by_index(rows_of(run))
    lines = (run / "results.jsonl").read_bytes().splitlines(keepends=True)
    torn = lines[5][: len(lines[5]) // 2 + 1]  # cut mid-row, likely inside a multi-byte character
    (run / "results.jsonl").write_bytes(b"".join(lines[:5]) + lines[0] + torn)  # rows 6-8 gone, row 1 twice
    assert main(["eval", "--resume", str(run)]) == 0
    capsys.readouterr()
    raw = (run / "results.jsonl").read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 8
    rows = rows_of(run)
    assert sorted(r["index"] for r in rows) == sorted(original)
    assert by_index(rows) == original
    assert read_json(run / "summary.json")["reused_rows"] == 5


def test_resume_refuses_when_the_data_or_the_settings_changed(tmp_path, capsys):
    data = tmp_path / "mmlu.csv"
    write_csv(data, 4)
    run = tmp_path / "run"
    model = demo_mod.ensure_demo_model()
    assert main(["eval", "--model", str(model), "--data", str(data), "--limit", "4", "--max-new-tokens", "4",
                 "--dtype", "fp32", "--out", str(run)]) == 0
    config = read_json(run / "config.json")
    assert config["settings"]["data_sha256"] and config["settings"]["max_new_tokens"] == 4
    assert all(r["key"] for r in rows_of(run))
    capsys.readouterr()
    before = snapshot(run)

    original = data.read_bytes()
    data.write_bytes(original + b"\n")  # the same questions, but not the same file
    assert main(["eval", "--resume", str(run)]) == 2
    assert "the data file changed" in one_error_line(capsys)

    data.write_bytes(original)
    edited = {**config, "max_new_tokens": 5}
    (run / "config.json").write_text(json.dumps(edited), encoding="utf-8")
    before["config.json"] = ((run / "config.json").stat().st_size, (run / "config.json").stat().st_mtime_ns)
    assert main(["eval", "--resume", str(run)]) == 2
    assert "max_new_tokens was 4, now 5" in one_error_line(capsys)
    assert snapshot(run) == before  # refused resumes leave the run exactly as it was


def test_resume_of_a_run_still_being_written_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(DEMO + ["--limit", "2", "--out", str(run)]) == 0
    capsys.readouterr()
    events = [e for e in iter_jsonl(run / "events.jsonl") if e["type"] != "end"]
    events[0]["pid"] = os.getppid()  # a live process that is not this one
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    assert main(["eval", "--resume", str(run)]) == 2
    assert f"still being written by process {os.getppid()}" in one_error_line(capsys)


def test_resuming_a_finished_run_runs_nothing(tmp_path, monkeypatch):
    run = tmp_path / "run"
    assert main(DEMO + ["--limit", "3", "--out", str(run)]) == 0
    import core.eval.run as run_module

    monkeypatch.setattr(run_module.EvalJob, "_answer", lambda *a, **k: pytest.fail("nothing should run"))
    assert main(["eval", "--resume", str(run)]) == 0
    assert len(rows_of(run)) == 3 and read_json(run / "summary.json")["reused_rows"] == 3


def test_repeated_identical_csv_rows_are_two_questions_on_resume(tmp_path, monkeypatch):
    lines = eval_config.DEMO_DATA.read_text(encoding="utf-8").splitlines(keepends=True)
    data = tmp_path / "repeated.csv"
    data.write_text(lines[0] + lines[1] + lines[1] + lines[2], encoding="utf-8")  # the same row, index and all, twice
    run = tmp_path / "run"
    monkeypatch.setattr(eval_config, "DEMO_DATA", data)
    assert main(["eval", "--demo", "--max-new-tokens", "4", "--batch-size", "2", "--subject", "all", "--out", str(run)]) == 0
    first = read_json(run / "summary.json")
    assert first["n"] == first["total"] == 3
    keys = [r["key"] for r in rows_of(run)]
    assert len(set(keys)) == 3
    import core.eval.run as run_module

    monkeypatch.setattr(run_module.EvalJob, "_answer", lambda *a, **k: pytest.fail("every question already has its answer"))
    assert main(["eval", "--resume", str(run)]) == 0
    again = read_json(run / "summary.json")
    assert again["reused_rows"] == 3 and again["n"] == 3 and len(rows_of(run)) == 3
