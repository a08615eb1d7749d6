"""Several processes on CPU (gloo): `--processes 2` trains, tunes and answers like one process, writes one
run folder, resumes on another process count, and fails in one line when a rank dies or the rendezvous is
unreachable.

The ranks are real processes started by llmlab's launcher (torch's elastic launcher), so each test pays a
few seconds of start-up; the models and data are tiny.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import DEMO_DATA_DIR
from core.cli import main
from core.runs import iter_jsonl, read_json

ZH = str(DEMO_DATA_DIR / "demo_corpus_zh.txt")
ROOT = Path(__file__).resolve().parents[2]


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    lines = err.replace("\r", "\n").splitlines()  # a progress bar's \r is not a line break to splitlines
    return [line for line in lines if line.startswith("llmlab: error:")]


def llmlab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The CLI in a process of its own (as a user runs it), from the repository root."""
    return subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ})


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ}, start_new_session=True)


def wait_for_event(run: Path, kind: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in iter_jsonl(run / "events.jsonl"):
            if event["type"] == kind:
                return event
        time.sleep(0.2)
    raise AssertionError(f"no {kind} event in {run} after {timeout} s")


@pytest.fixture(scope="module")
def small_tokenizer(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "run"
    assert main(["tokenizer", "train", "--data", ZH, "--rows", "1500", "--eval-rows", "100", "--vocab-size", "600",
                 "--out", str(out)]) == 0
    return out


def pretrain_args(tokenizer: Path, out: Path, *extra: str) -> list[str]:
    # dropout 0: with it, each rank draws its own masks, so the runs would match only in distribution
    return ["pretrain", "--data", ZH, "--rows", "1200", "--eval-rows", "100", "--epochs", "2", "--tokenizer",
            str(tokenizer), "--model-size", "tiny", "--block-size", "64", "--batch-size", "8", "--lr", "3e-3",
            "--dropout", "0", "--sample-tokens", "0", "--log-every", "2", "--save-every", "6", "--micro-batch-size", "2",
            "--out", str(out), *extra]  # micro-batches of 2: each rank's share of 4 runs as two, the first without a sync


def losses(run: Path) -> list[tuple[int, float]]:
    return [(e["step"], e["loss"]) for e in iter_jsonl(run / "events.jsonl") if e["type"] == "loss"]


@pytest.fixture(scope="module")
def one_process(small_tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "run"
    assert main(pretrain_args(small_tokenizer, out)) == 0
    return out


@pytest.fixture(scope="module")
def one_process_adamw(small_tokenizer, tmp_path_factory):
    """The one-process run an --fsdp run compares with: --fsdp trains with AdamW (auto picks it; Muon needs whole
    matrices), the one-process default is Muon."""
    out = tmp_path_factory.mktemp("one-adamw") / "run"
    assert main(pretrain_args(small_tokenizer, out, "--optimizer", "adamw")) == 0
    return out


def test_two_processes_train_step_for_step_like_one_and_write_one_run_folder(small_tokenizer, one_process, tmp_path):
    out = tmp_path / "two" / "run"
    done = llmlab(*pretrain_args(small_tokenizer, out, "--processes", "2"))
    assert done.returncode == 0, done.stderr[-2000:]
    one, two = read_json(one_process / "summary.json"), read_json(out / "summary.json")
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["steps"] == one["steps"] and two["status"] == "completed"
    a, b = losses(one_process), losses(out)
    assert [s for s, _ in a] == [s for s, _ in b]
    assert max(abs(x - y) for (_, x), (_, y) in zip(a, b)) < 1e-3
    assert two["eval_loss"] == pytest.approx(one["eval_loss"], abs=1e-3)
    assert any("data-parallel over 2 processes" in o for o in two["optimizations"])
    # one run folder, written once: one start and one end, and nothing beside it
    assert [p.name for p in out.parent.iterdir()] == ["run"]
    events = list(iter_jsonl(out / "events.jsonl"))
    assert [e["type"] for e in events].count("start") == 1 and [e["type"] for e in events].count("end") == 1
    assert len(events[0]["pids"]) == 2
    assert not (out / "ranks").exists()
    assert (out / "model" / "model.safetensors").is_file()


def test_a_run_stopped_on_two_processes_resumes_on_one_and_ends_where_one_process_would(
        small_tokenizer, one_process, tmp_path):
    out = tmp_path / "run"
    job = start(*pretrain_args(small_tokenizer, out, "--processes", "2"))
    try:
        wait_for_event(out, "checkpoint")
        os.kill(job.pid, signal.SIGINT)  # the launcher only, as the app does; it passes the stop on
        _, err = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 128 + signal.SIGINT, err[-2000:]
    stopped = read_json(out / "summary.json")
    assert stopped["status"] == "stopped" and stopped["world_size"] == 2
    assert stopped["steps"] < read_json(one_process / "summary.json")["steps"]

    assert main(["pretrain", "--resume", str(out)]) == 0  # one process now
    resumed, one = read_json(out / "summary.json"), read_json(one_process / "summary.json")
    assert resumed["status"] == "completed" and resumed["world_size"] == 1 and resumed["steps"] == one["steps"]
    assert resumed["final_loss"] == pytest.approx(one["final_loss"], abs=1e-3)
    assert resumed["eval_loss"] == pytest.approx(one["eval_loss"], abs=1e-3)


def test_fsdp_trains_like_one_process_and_its_sharded_checkpoint_resumes_on_one(small_tokenizer, one_process_adamw,
                                                                                  tmp_path):
    one_process = one_process_adamw
    """--fsdp on 2 ranks: each holds half the model; stopped at a checkpoint (written as each rank's shard), model/
    gathered on rank 0 is a normal folder with those weights, and one process resumes it to the one-process end."""
    import torch
    from transformers import AutoModelForCausalLM

    from core.optim import adamw
    from core.train.fsdp import ShardedState

    out = tmp_path / "run"
    job = start(*pretrain_args(small_tokenizer, out, "--processes", "2", "--fsdp"))
    try:
        wait_for_event(out, "checkpoint")
        os.kill(job.pid, signal.SIGINT)
        _, err = job.communicate(timeout=180)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 128 + signal.SIGINT, err[-2000:]
    stopped, one = read_json(out / "summary.json"), read_json(one_process / "summary.json")
    assert stopped["status"] == "stopped" and stopped["world_size"] == 2 and stopped["fsdp"] is True
    assert any("model sharded over 2 processes (FSDP2" in o for o in stopped["optimizations"])
    assert [m["rank"] for m in stopped["rank_memory"]] == [0, 1] and all(m["peak_rss_mib"] > 0 for m in stopped["rank_memory"])
    expected = dict(losses(one_process))
    trained = losses(out)
    assert trained and max(abs(loss - expected[step]) for step, loss in trained) < 1e-3  # the same steps as one process

    checkpoint = Path(stopped["checkpoint"])
    assert sorted(p.name for p in (checkpoint / "sharded").glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    assert not (checkpoint / "model.safetensors").exists()  # no rank held the whole model
    saved = AutoModelForCausalLM.from_pretrained(out / "model")  # a plain Hugging Face folder
    fresh = AutoModelForCausalLM.from_config(saved.config)
    optimizer, _ = adamw(fresh, 1e-3, 0.1)
    ShardedState(fresh).load(checkpoint / "sharded", optimizer)  # both ranks' shards, into one process
    for name, tensor in saved.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[name], tensor, msg=name)

    assert main(["pretrain", "--resume", str(out)]) == 0  # one process, from the 2-rank shards
    resumed = read_json(out / "summary.json")
    assert resumed["status"] == "completed" and resumed["world_size"] == 1 and resumed["steps"] == one["steps"]
    assert resumed["final_loss"] == pytest.approx(one["final_loss"], abs=1e-3)
    assert resumed["eval_loss"] == pytest.approx(one["eval_loss"], abs=1e-3)


@pytest.mark.usefixtures("shared_demo_model")
def test_two_process_eval_gives_the_one_process_answers_in_question_order(tmp_path):
    args = ["eval", "--demo", "--limit", "10", "--max-new-tokens", "32"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    done = llmlab(*args, "--processes", "2", "--out", str(tmp_path / "two"))
    assert done.returncode == 0, done.stderr[-2000:]
    one, two = (list(iter_jsonl(tmp_path / name / "results.jsonl")) for name in ("one", "two"))
    assert [r["index"] for r in two] == [r["index"] for r in one] == sorted(r["index"] for r in one)
    assert [(r["output"], r["pred"]) for r in two] == [(r["output"], r["pred"]) for r in one]  # fp32: identical
    s1, s2 = (read_json(tmp_path / name / "summary.json") for name in ("one", "two"))
    assert (s2["accuracy"], s2["n"], s2["tokens_generated"]) == (s1["accuracy"], s1["n"], s1["tokens_generated"])
    assert s2["world_size"] == 2


@pytest.mark.usefixtures("shared_demo_model")
@pytest.mark.parametrize("fsdp", [False, True], ids=["ddp", "fsdp"])
def test_two_process_finetune_matches_one_and_only_rank_0_writes(tmp_path, fsdp):
    """DDP, or --fsdp: the frozen base sharded over the ranks, the adapter trained over the shards."""
    args = ["finetune", "--demo", "--epochs", "1", "--dropout", "0"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    extra = ["--fsdp", "--save-every", "5"] if fsdp else []
    done = llmlab(*args, "--processes", "2", *extra, "--out", str(tmp_path / "two"))
    assert done.returncode == 0, done.stderr[-2000:]
    s1, s2 = (read_json(tmp_path / name / "summary.json") for name in ("one", "two"))
    assert s2["world_size"] == 2 and s2["steps"] == s1["steps"]
    assert s2["train_loss"] == pytest.approx(s1["train_loss"], abs=1e-3)
    assert s2["best_val_loss"] == pytest.approx(s1["best_val_loss"], abs=1e-3)
    assert (tmp_path / "two" / "adapter" / "adapter_model.safetensors").is_file()
    rows = list(iter_jsonl(tmp_path / "two" / "results.jsonl"))
    assert len(rows) == len(list(iter_jsonl(tmp_path / "one" / "results.jsonl"))) > 0
    if fsdp:
        import torch
        from safetensors.torch import load_file

        assert s2["fsdp"] is True and len(s2["rank_memory"]) == 2
        one, two = (load_file(str(tmp_path / name / "adapter" / "adapter_model.safetensors")) for name in ("one", "two"))
        assert one.keys() == two.keys() and one  # gathered on rank 0 into a normal peft folder
        for name in one:
            torch.testing.assert_close(two[name], one[name], atol=1e-5, rtol=1e-4)
        checkpoint = Path(s2["checkpoint"])
        assert sorted(p.name for p in (checkpoint / "sharded").glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
        assert [r["output"] for r in rows] == [r["output"] for r in iter_jsonl(tmp_path / "one" / "results.jsonl")]


@pytest.mark.parametrize("victim, words", [(1, "rank 1 of 2 (pid"), (0, "rank 0 of 2 was killed (SIGKILL)")])
def test_a_rank_that_dies_fails_the_run_in_one_line(victim, words, small_tokenizer, tmp_path):
    """Rank 1 killed: rank 0 finds which pid is gone. Rank 0 killed: the launcher writes the run's end."""
    out = tmp_path / "run"
    job = start(*pretrain_args(small_tokenizer, out, "--processes", "2", "--epochs", "50"))
    try:
        pids = wait_for_event(out, "start")["pids"]
        wait_for_event(out, "loss")
        os.kill(pids[victim], signal.SIGKILL)
        _, err = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 2
    lines = error_lines(err)
    assert len(lines) == 1 and words in lines[0], err[-2000:]
    summary = read_json(out / "summary.json")
    assert summary["status"] == "failed" and words in summary["error"]
    assert list(iter_jsonl(out / "events.jsonl"))[-1]["type"] == "end"
    assert "Traceback" not in err  # a peer's traceback goes to ranks/rank-N.error, not the terminal


def test_an_unreachable_rendezvous_is_one_line(tmp_path, capsys):
    code = main(["pretrain", "--demo", "--nodes", "2", "--rendezvous", "127.0.0.1:9", "--rendezvous-timeout", "2",
                 "--out", str(tmp_path / "run")])
    lines = error_lines(capsys.readouterr().err)
    assert code == 2 and len(lines) == 1 and "could not meet the other ranks at 127.0.0.1:9" in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, words", [
    (["--processes", str((os.cpu_count() or 1) + 1)], "CPU cores; use at most"),
    (["--nodes", "2"], "needs --rendezvous HOST:PORT"),
    (["--nodes", "2", "--rendezvous", "nowhere"], "is not HOST:PORT"),
    (["--processes", "0"], "must be at least 1"),
])
def test_a_request_the_machine_cannot_take_is_refused_before_anything_starts(args, words, tmp_path, capsys):
    code = main(["eval", "--demo", *args, "--out", str(tmp_path / "run")])
    lines = error_lines(capsys.readouterr().err)
    assert code == 2 and len(lines) == 1 and words in lines[0]
    assert not (tmp_path / "run").exists()


def test_the_ranks_run_the_command_without_the_launch_options():
    from core.launch import worker_argv

    argv = ["pretrain", "--demo", "--processes", "2", "--nodes=1", "--rendezvous", "h:1", "--lr", "1e-3"]
    assert worker_argv(argv) == ["pretrain", "--demo", "--lr", "1e-3"]


def test_a_stop_passed_on_by_the_launcher_counts_once():
    from core.signals import StopRequest

    stop = StopRequest()
    stop._handle(signal.SIGINT, None)
    stop._handle(signal.SIGINT, None)  # the same Ctrl-C, from the terminal and from the launcher
    assert stop.requested
    stop._first_at -= 5
    with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C, later, still means "now"
        stop._handle(signal.SIGINT, None)


def test_one_process_writes_world_size_1(one_process):
    summary = read_json(one_process / "summary.json")
    assert summary["world_size"] == 1
    assert "pids" not in json.loads((one_process / "events.jsonl").read_text().splitlines()[0])


def test_several_adapters_with_several_processes_are_refused_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as a rank sees it; refused before any process group is joined
    monkeypatch.setenv("RANK", "0")
    code = main(["eval", "--demo", "--adapter", str(tmp_path / "a"), "--adapter", str(tmp_path / "b"),
                 "--out", str(tmp_path / "run")])
    lines = error_lines(capsys.readouterr().err)
    assert code == 2 and len(lines) == 1 and "drop --processes" in lines[0]
    assert not (tmp_path / "run").exists()
