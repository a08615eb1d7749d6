"""Bad input, for every command: one clear line on stderr, exit code 2, no traceback, and the runs
folder exactly as it was (no new run, existing runs untouched).

The table at the top holds the cases that must be refused before anything is written. Cases that
fail mid-run (a full disk) or that must succeed (a row or question far longer than the context)
have their own tests below.
"""

from __future__ import annotations

import errno
import math

import pytest

from core.cli import main
from core.runs import iter_jsonl, read_json
from core.synthetic import bookcorpus_like_rows

MMMLU_HEADER = ",Question,A,B,C,D,Answer,Subject\n"
TINY = ["--model-size", "tiny", "--tokenizer", "gpt2-bundled", "--block-size", "32", "--rows", "30", "--eval-rows", "0",
        "--epochs", "1", "--batch-size", "8"]


def snapshot(folder):
    """Every path under `folder` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("llmlab: error:")]


CASES = [
    # (id, argv; {in}, {runs}, {eval_run}, {pre_run} and the shared model paths are filled in, expected words)
    ("pretrain-missing-file", "pretrain --data {in}/missing.txt", "does not exist"),
    ("pretrain-empty-file", "pretrain --data {in}/empty.txt", "is empty"),
    ("pretrain-binary-file", "pretrain --data {in}/binary.txt", "looks like a binary file"),
    ("pretrain-csv-without-text", "pretrain --data {in}/notext.csv", "no 'text' column"),
    ("pretrain-gbk-csv", "pretrain --data {in}/gbk.csv", "not UTF-8"),
    ("pretrain-utf16-file", "pretrain --data {in}/utf16.txt", "is UTF-16 text"),
    ("pretrain-zero-rows", "pretrain --data {in}/corpus.txt --rows 0", "--rows must be at least 1"),
    ("pretrain-negative-epochs", "pretrain --data {in}/corpus.txt --epochs -1", "--epochs must be at least 1"),
    ("pretrain-zero-block", "pretrain --data {in}/corpus.txt --block-size 0", "--block-size must be at least 1"),
    ("pretrain-one-token-block", "pretrain --data {in}/corpus.txt --block-size 1", "--block-size must be at least 2"),
    ("pretrain-zero-batch", "pretrain --data {in}/corpus.txt --batch-size 0", "--batch-size must be at least 1"),
    ("pretrain-negative-lr", "pretrain --data {in}/corpus.txt --lr -0.1", "--lr must be a positive number"),
    ("pretrain-negative-eval-rows", "pretrain --data {in}/corpus.txt --eval-rows -5", "--eval-rows must be 0 or more"),
    ("pretrain-negative-save-every", "pretrain --data {in}/corpus.txt --save-every -1", "--save-every must be 0 or more"),
    ("pretrain-block-over-context", "pretrain --data {in}/corpus.txt --model-size tiny --block-size 512", "exceeds the model's context"),
    ("pretrain-unknown-preset", "pretrain --data {in}/corpus.txt --model-size huge", "unknown --model-size 'huge'"),
    ("pretrain-tokenizer-without-files", "pretrain --data {in}/corpus.txt --tokenizer {in}/notok", "has no vocabulary"),
    ("pretrain-out-under-a-file", "pretrain --data {in}/corpus.txt --out {in}/a-file/run", "cannot create --out"),
    ("pretrain-out-not-empty", "pretrain --data {in}/corpus.txt --out {eval_run}", "already exists and is not empty"),
    ("pretrain-resume-damaged-checkpoint", "pretrain --resume {pre_run}", "checkpoint step-000004 of"),
    ("pretrain-resume-eval-run", "pretrain --resume {eval_run}", "llmlab eval --resume"),
    ("pretrain-resume-missing", "pretrain --resume {runs}/nothing", "not a run directory"),
    ("pretrain-resume-with-options", "pretrain --resume {pre_run} --rows 5", "--resume reuses the run's own options"),
    ("pretrain-fsdp-one-process", "pretrain --data {in}/corpus.txt --fsdp", "--fsdp shards the model over several processes"),
    ("finetune-fsdp-one-process", "finetune --demo --fsdp", "add --processes N (N of 2 or more"),
    ("pretrain-negative-max-steps", "pretrain --data {in}/corpus.txt --max-steps -1", "--max-steps must be 0 or more"),
    ("finetune-negative-max-steps", "finetune --demo --max-steps -2", "--max-steps must be 0 or more"),
    ("pretrain-zero-num-proc", "pretrain --data {in}/corpus.txt --num-proc 0", "--num-proc must be at least 1"),
    ("eval-missing-file", "eval --model {model} --data {in}/missing.csv", "does not exist"),
    ("eval-empty-file", "eval --model {model} --data {in}/empty.csv", "not a readable CSV"),
    ("eval-binary-file", "eval --model {model} --data {in}/binary.csv", "looks like a binary file"),
    ("eval-csv-without-columns", "eval --model {model} --data {in}/cols.csv", "lacks column(s) D, Subject"),
    ("eval-gbk-csv", "eval --model {model} --data {in}/gbk-mmmlu.csv", "not UTF-8"),
    ("eval-utf16-csv", "eval --model {model} --data {in}/utf16.csv", "is UTF-16 text"),
    ("eval-zero-limit", "eval --demo --limit 0", "--limit must be at least 1"),
    ("eval-negative-limit", "eval --demo --limit -3", "--limit must be at least 1"),
    ("eval-zero-max-new-tokens", "eval --demo --max-new-tokens 0", "--max-new-tokens must be at least 1"),
    ("eval-zero-batch", "eval --demo --batch-size 0", "must be at least 1"),
    ("eval-negative-threads", "eval --demo --threads -2", "--threads must be at least 1"),
    ("eval-unknown-subject", "eval --model {model} --data {in}/ok.csv --subject astronomy", "'astronomy' is not in the data"),
    ("eval-unknown-mode", "eval --demo --mode sample", "'--mode'"),
    ("eval-model-without-weights", "eval --model {no_weights} --data {in}/ok.csv", "has no weights"),
    ("eval-model-without-tokenizer", "eval --model {no_tokenizer} --data {in}/ok.csv", "has no tokenizer files"),
    ("eval-model-damaged-weights", "eval --model {damaged} --data {in}/ok.csv", "model.safetensors is damaged"),
    ("eval-model-is-a-pretrain-run", "eval --model {pre_run} --data {in}/ok.csv", "is a pretraining run folder"),
    ("eval-answer-longer-than-context", "eval --model {gpt2} --data {in}/ok.csv --max-new-tokens 128", "leaves no room for a question"),
    ("eval-out-under-a-file", "eval --demo --out {in}/a-file/run", "cannot create --out"),
    ("eval-resume-pretrain-run", "eval --resume {pre_run}", "llmlab pretrain --resume"),
    ("eval-resume-missing", "eval --resume {runs}/nothing", "not a run directory"),
    ("eval-resume-with-options", "eval --resume {eval_run} --limit 3", "--resume reuses the run's own options; drop --limit"),
    ("hw-unknown-option", "hw --gpu 3", "No such option"),
]


@pytest.mark.parametrize("argv,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_touches_no_run(world, capsys, argv, expected):
    args = [a.format(**world) for a in argv.split()]
    before = snapshot(world["runs"])
    code = main(args)
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert code == 2, err
    assert len(lines) == 1 and len(err.strip().splitlines()) == 1, err
    assert expected in lines[0], lines[0]
    assert snapshot(world["runs"]) == before


def test_an_unwritable_runs_folder_is_one_line(world, capsys, monkeypatch):
    """chmod does not stop root, so the write probe is made to fail the way a read-only folder does."""
    import pathlib

    real = pathlib.Path.write_text

    def read_only(self, *args, **kwargs):
        if self.name.startswith(".llmlab-write-test"):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", read_only)
    before = snapshot(world["runs"])
    for args in (["eval", "--demo", "--limit", "2", "--max-new-tokens", "2"], ["pretrain", "--data", str(world["in"] / "corpus.txt"), *TINY]):
        assert main(args) == 2
        (line,) = error_lines(capsys.readouterr().err)
        assert f"cannot write to {world['runs']} (Permission denied)" in line
    assert snapshot(world["runs"]) == before


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_during_an_eval_says_so_in_one_line(world, capsys, monkeypatch):
    from core.runs import JsonlWriter

    real = JsonlWriter.write

    def write(self, obj):
        if self.path.name == "results.jsonl":
            disk_full()
        real(self, obj)

    monkeypatch.setattr(JsonlWriter, "write", write)
    before = snapshot(world["runs"])
    assert main(["eval", "--demo", "--limit", "4", "--max-new-tokens", "2", "--batch-size", "2"]) == 2
    err = capsys.readouterr().err
    (line,) = error_lines(err)
    assert "the disk is full (No space left on device)" in line and err.strip().splitlines()[-1] == line
    after = snapshot(world["runs"])
    assert {k: v for k, v in after.items() if k in before} == before
    (new,) = {k.split("/")[0] for k in after} - {k.split("/")[0] for k in before}
    assert read_json(world["runs"] / new / "summary.json")["status"] == "failed"


def test_a_full_disk_while_checkpointing_says_so_and_leaves_no_half_checkpoint(world, capsys, monkeypatch):
    import peft  # noqa: F401 -- imported first: a module that binds save_file while it is patched keeps the fake for good
    import safetensors.torch
    import transformers.modeling_utils  # noqa: F401

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    before = snapshot(world["runs"])
    out = world["in"] / "run"
    assert main(["pretrain", "--data", str(world["in"] / "corpus.txt"), *TINY, "--save-every", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    (line,) = error_lines(err)
    assert "the disk is full (No space left on device)" in line and err.strip().splitlines()[-1] == line
    assert not list((out / "checkpoints").iterdir())  # the temporary checkpoint folder was removed
    assert read_json(out / "summary.json")["status"] == "failed"
    assert snapshot(world["runs"]) == before


def test_out_of_memory_even_at_one_sequence_is_one_line(world, capsys, monkeypatch):
    import torch

    from core.pretrain import model as model_module

    real_build = model_module.build_model

    def build(cfg, vocab_size, eos_token_id=None):
        model = real_build(cfg, vocab_size, eos_token_id)

        def no_memory(*args, **kwargs):
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")

        model.transformer.forward = no_memory  # the body: both the chunked and the full-logits loss go through it
        return model

    monkeypatch.setattr(model_module, "build_model", build)
    out = world["in"] / "oom-run"
    assert main(["pretrain", "--data", str(world["in"] / "corpus.txt"), *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    (line,) = error_lines(err)
    assert "out of memory even with one sequence per micro-batch" in line and err.strip().splitlines()[-1] == line
    summary = read_json(out / "summary.json")
    assert summary["status"] == "failed" and "out of memory" in summary["error"]
    assert [e["micro_batch_size"] for e in iter_jsonl(out / "events.jsonl") if e["type"] == "oom"] == [4, 2, 1]


def test_a_row_far_longer_than_the_context_still_trains(world, capsys):
    """Packing cuts a 100,000-character row into blocks like any other text.

    Long words keep it to ~6,500 tokens (~200 blocks of 32), so the test stays quick on a CPU.
    """
    rows = bookcorpus_like_rows(30, seed=2)
    words = ["responsibilities", "understanding", "international", "communication", "administration", "relationship"]
    long_row = " ".join(words[i % len(words)] for i in range(8000))[:100_000]
    assert len(long_row) == 100_000
    (world["in"] / "long.txt").write_text("\n".join(rows[:10] + [long_row] + rows[10:]) + "\n", encoding="utf-8")
    out = world["in"] / "long-run"
    args = ["pretrain", "--data", str(world["in"] / "long.txt"), *TINY, "--batch-size", "64", "--log-every", "4",
            "--out", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    summary = read_json(out / "summary.json")
    assert summary["status"] == "completed" and summary["tokens_per_epoch"] > 5_000
    plan = next(e for e in iter_jsonl(out / "events.jsonl") if e["type"] == "plan")
    assert plan["blocks"] == math.ceil(summary["tokens_per_epoch"] / 32) and summary["steps"] == math.ceil(plan["blocks"] / 64)


def test_a_question_longer_than_the_context_loses_its_beginning_with_a_warning(world, capsys):
    """A 128-token model: the long prompt is cut from the left so the choices and the answer cue stay."""
    from transformers import AutoTokenizer

    question = "这是一个很长的问题。" * 400
    (world["in"] / "long.csv").write_text(
        MMMLU_HEADER + f"0,{question},yes,no,maybe,never,A,moral_scenarios\n1,Is fire cold?,yes,no,maybe,never,B,moral_scenarios\n",
        encoding="utf-8")
    out = world["in"] / "long-eval"
    args = ["eval", "--model", str(world["gpt2"]), "--data", str(world["in"] / "long.csv"), "--max-new-tokens", "8",
            "--batch-size", "2", "--out", str(out)]
    assert main(args) == 0
    assert "1 of 2 prompts do not fit the model's 128-token context with --max-new-tokens 8" in capsys.readouterr().err
    rows = {r["index"]: r for r in iter_jsonl(out / "results.jsonl")}
    tokenizer = AutoTokenizer.from_pretrained(world["gpt2"])
    long_prompt = rows[0]["prompt"]
    assert rows[0]["prompt_cut"] > 0 and len(tokenizer(long_prompt)["input_ids"]) <= 128 - 8
    assert long_prompt.endswith("D) never\n请你给出答案（只输出一个字母）: ") and rows[0]["question"] == question
    assert "prompt_cut" not in rows[1] and rows[1]["prompt"].startswith("问题: Is fire cold?")
    summary = read_json(out / "summary.json")
    assert summary["status"] == "completed" and summary["truncated_prompts"] == 1


@pytest.mark.parametrize("quantize", ["nf4", "int8"])
def test_fsdp_with_a_quantized_base_is_refused_and_which_combinations_work_is_said(quantize):
    """--quantize (a bitsandbytes base) comes with its own change; the check reads the field when it exists."""
    from core.errors import UsageError
    from core.finetune.config import demo_config

    cfg = demo_config(fsdp=True)
    cfg.quantize = quantize
    with pytest.raises(UsageError, match=f"--fsdp cannot shard a --quantize {quantize} base") as refused:
        cfg.validate()
    assert "use --fsdp with a bf16 base (no --quantize), or --quantize without --fsdp" in str(refused.value)
    cfg.quantize = "none"
    cfg.validate()


def test_muon_with_fsdp_and_an_fsdp_ensemble_are_refused_in_one_line(capsys):
    """Muon needs each matrix whole (FSDP2 slices it); --ensemble trains several adapters over one whole base."""
    assert main(["pretrain", "--demo", "--optimizer", "muon", "--fsdp", "--processes", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--optimizer muon needs each weight matrix whole" in err and len(err.splitlines()) == 1
    assert main(["finetune", "--demo", "--ensemble", "3", "--fsdp", "--processes", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--fsdp trains one adapter over a sharded base; --ensemble 3" in err and len(err.splitlines()) == 1
