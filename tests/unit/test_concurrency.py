"""Jobs started together never share a run folder, and readers cope with files being written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.lm import demo as demo_mod
from core.runs import iter_jsonl, list_runs, read_json

REPO = Path(__file__).resolve().parents[2]

# Each child sleeps until the same wall-clock instant, then claims a run folder.
CLAIM = textwrap.dedent("""
    import sys, time
    from core.errors import UsageError
    from core.runs import create_run_dir
    start, out = float(sys.argv[1]), sys.argv[2] or None
    time.sleep(max(0.0, start - time.time()))
    try:
        print(create_run_dir("eval", out))
    except UsageError as exc:
        print("refused:", exc)
""")


def claim_together(n: int, out: str = "") -> list[str]:
    start = time.time() + 1.5  # every child is up and waiting by then
    procs = [subprocess.Popen([sys.executable, "-c", CLAIM, str(start), out], stdout=subprocess.PIPE, text=True, cwd=REPO)
             for _ in range(n)]
    return [p.communicate(timeout=60)[0].strip() for p in procs]


def test_run_folders_claimed_at_the_same_moment_are_all_different(tmp_path):
    got = claim_together(8)
    assert len(set(got)) == 8 and not any(g.startswith("refused") for g in got)
    assert all(Path(g).parent == tmp_path / "runs" and Path(g).is_dir() for g in got)
    # <timestamp>-eval, then -2, -3 ... for the ones that came in the same second
    assert all(re.fullmatch(r"\d{8}-\d{6}-eval(-\d+)?", Path(g).name) for g in got)


def test_the_same_out_folder_goes_to_exactly_one_job(tmp_path):
    out = tmp_path / "shared-out"
    out.mkdir()
    (out / "job.log").write_text("")  # the app makes the folder first, for the job's output
    got = claim_together(6, str(out))
    assert got.count(str(out)) == 1
    assert sum(g.startswith("refused:") for g in got) == 5


def test_two_evals_started_together_write_separate_runs(tmp_path):
    cache = tmp_path / "cache"
    demo_mod.ensure_demo_model(cache / demo_mod.DEMO_MODEL_NAME)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LLMLAB_RUNS_DIR": str(tmp_path / "runs"), "LLMLAB_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-m", "core", "eval", "--demo", "--limit", "3", "--max-new-tokens", "4"]
    procs = [subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    runs = list_runs(tmp_path / "runs")
    assert len(runs) == 2
    pids = set()
    for run in runs:
        assert read_json(run / "summary.json")["status"] == "completed"
        assert len(list(iter_jsonl(run / "results.jsonl"))) == 3
        events = list(iter_jsonl(run / "events.jsonl"))
        assert [e["type"] for e in events].count("start") == 1 and events[-1]["type"] == "end"
        pids.add(events[0]["pid"])
    assert pids == {p.pid for p in procs}


def test_iter_jsonl_skips_a_torn_last_line_even_inside_a_character(tmp_path):
    path = tmp_path / "results.jsonl"
    rows = [{"index": i, "output": "答案是 A，因为……"} for i in range(3)]
    whole = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    last = json.dumps({"index": 3, "output": "答案"}, ensure_ascii=False).encode()
    for cut in range(1, len(last)):  # every place a writer can be caught mid-line, mid-character included
        path.write_bytes(whole + last[:cut])
        assert list(iter_jsonl(path)) == rows
    # A torn line followed by more lines (a crash, then an append) loses only itself.
    path.write_bytes(whole[:10] + b"\n" + whole)
    assert list(iter_jsonl(path)) == rows
    assert list(iter_jsonl(tmp_path / "missing.jsonl")) == []


WRITER = textwrap.dedent("""
    import sys, time
    from core.runlog import EventLog, Loss
    from core.runs import create_run_dir, write_json
    for n in range(int(sys.argv[1])):
        run = create_run_dir("pretrain")
        write_json(run / "config.json", {"kind": "pretrain", "n": n})
        with EventLog(run / "events.jsonl") as log:
            for step in range(20):
                log.emit(Loss(step=step, epoch=1, loss=1.0 / (step + 1), extra={"note": "進捗" * 50}))
                line = '{"type": "loss", "step": -1, "note": "進捗"}\\n'.encode()
                log._fh.buffer.write(line[:-5])  # caught mid-line, inside a character ...
                log._fh.buffer.flush()
                time.sleep(0.0005)
                log._fh.buffer.write(line[-5:])  # ... and finished a moment later
                log._fh.buffer.flush()
        write_json(run / "summary.json", {"status": "completed", "n": n})
    print("done")
""")


def test_the_runs_list_stays_readable_while_jobs_write(tmp_path):
    writer = subprocess.Popen([sys.executable, "-c", WRITER, "25"], cwd=REPO, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "LLMLAB_RUNS_DIR": str(tmp_path / "runs")})
    reads = 0
    while writer.poll() is None or reads == 0:
        for run in list_runs(tmp_path / "runs"):
            config = read_json(run / "config.json")
            assert config is not None and config["kind"] == "pretrain"  # listed means readable
            for event in iter_jsonl(run / "events.jsonl"):
                assert event["type"] == "loss" and isinstance(event["step"], int)
            summary = read_json(run / "summary.json")
            assert summary is None or summary["status"] == "completed"
            reads += 1
    assert writer.communicate(timeout=60)[0].strip() == "done"
    runs = list_runs(tmp_path / "runs")
    assert len(runs) == 25 and reads > 25
    assert all(len(list(iter_jsonl(r / "events.jsonl"))) == 40 for r in runs)



@pytest.mark.parametrize("kind", ["pretrain", "eval"])
def test_a_run_another_live_process_is_writing_cannot_be_resumed(tmp_path, capsys, kind):
    from core.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"kind": kind, "settings_hash": "x"}), encoding="utf-8")
    other = os.getppid()  # alive, and not this process
    (run / "events.jsonl").write_text(json.dumps({"type": "start", "pid": other}) + "\n", encoding="utf-8")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run.iterdir())
    assert main([kind, "--resume", str(run)]) == 2
    assert f"still being written by process {other}" in capsys.readouterr().err
    assert sorted((p.name, p.stat().st_mtime_ns) for p in run.iterdir()) == before
