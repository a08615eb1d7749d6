"""Defects found by probing the new commands as a user would (issue 21), each pinned by a test.

The bad-input classes every command shares (missing, binary, non-UTF-8 files, templates, ...) are in
test_bad_input_everywhere.py; these are the ones that need a setting of their own.
"""

from __future__ import annotations

import json
import shutil

import pytest

from core.cli import main
from core.runs import read_json


def refusal(capsys, code: int) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err
    return lines[0]


@pytest.fixture()
def place(world, tmp_path):
    """The shared bad-input world plus two eval runs that answered the same question."""
    row = {"qid": "0", "index": 0, "question": "q", "gold": "A", "pred": "A", "correct": True}
    for name, pred in (("e1", "A"), ("e2", "B")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text('{"kind": "eval"}', encoding="utf-8")
        (folder / "results.jsonl").write_text(json.dumps({**row, "pred": pred, "correct": pred == "A"}) + "\n")
        (folder / "summary.json").write_text('{"status": "completed"}', encoding="utf-8")
    return {**world, "e1": tmp_path / "e1", "e2": tmp_path / "e2"}


def lora_of(model_dir, out, seed=0):
    """An (untrained) LoRA of the model in `model_dir`, saved as fine-tuning saves one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from core.lm.demo import quiet_transformers

    torch.manual_seed(seed)
    with quiet_transformers():  # its progress bars are this test's set-up, not the command's output
        model = AutoModelForCausalLM.from_pretrained(model_dir)
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(out)
    return out


def test_vote_refuses_the_same_run_twice(place, capsys):
    line = refusal(capsys, main(["vote", str(place["e1"]), str(place["e1"]) + "/"]))
    assert "is the same run as" in line


def test_vote_refuses_a_vote_run_among_its_voters(place, capsys, tmp_path):
    assert main(["vote", str(place["e1"]), str(place["e2"]), "--out", str(tmp_path / "v")]) == 0
    capsys.readouterr()
    line = refusal(capsys, main(["vote", str(place["e1"]), str(tmp_path / "v")]))
    assert "is itself a vote" in line and str(place["e2"]) in line


def test_squad_and_math_refuse_a_model_beside_saved_predictions(world, capsys, tmp_path):
    from core.math.config import DEMO_MATH
    from core.squad.config import DEMO_SQUAD

    squad = tmp_path / "preds.json"
    squad.write_text(json.dumps({"x": "y"}), encoding="utf-8")
    for args in (["squad", "--data", str(DEMO_SQUAD)], ["math", "--data", str(DEMO_MATH)]):
        line = refusal(capsys, main([*args, "--predictions", str(squad), "--model", str(world["model"]),
                                     "--out", str(tmp_path / "run")]))
        assert "drop --model" in line and not (tmp_path / "run").exists()


def test_an_adapter_trained_on_another_local_base_is_refused_naming_both(world, capsys, tmp_path):
    from core.lm.demo import build_tiny_qwen2, gpt2_tokenizer

    other = tmp_path / "other-base"  # the same shapes as the demo model, other weights
    from core.lm.demo import quiet_transformers

    tokenizer = gpt2_tokenizer()
    with quiet_transformers():
        build_tiny_qwen2(tokenizer, seed=5).save_pretrained(other)
    tokenizer.save_pretrained(other)
    adapter = lora_of(other, tmp_path / "adapter")
    for args in (["eval", "--model", str(world["model"]), "--data", str(world["in"] / "ok.csv"), "--adapter", str(adapter)],
                 ["export", "--model", str(world["model"]), "--adapter", str(adapter), "--out", str(tmp_path / "merged")]):
        line = refusal(capsys, main(args))
        assert f"was trained on {other}" in line and str(world["model"]) in line
    assert not (tmp_path / "merged").exists()


def test_an_adapter_naming_a_base_that_is_gone_is_warned_about(world, capsys, tmp_path):
    adapter = lora_of(world["model"], tmp_path / "adapter")
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "someone/another-model"
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    out = tmp_path / "run"
    assert main(["eval", "--model", str(world["model"]), "--data", str(world["in"] / "ok.csv"), "--adapter", str(adapter),
                 "--max-new-tokens", "2", "--out", str(out)]) == 0
    assert "names someone/another-model as its base" in capsys.readouterr().err
    assert any("someone/another-model" in e.get("message", "") for e in map(json.loads, open(out / "events.jsonl")))


def test_export_uses_the_base_its_fine_tune_run_recorded(world, tmp_path):
    run = tmp_path / "ft-run"  # a demo fine-tune run folder: its config says demo, its adapter is inside
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"kind": "finetune", "demo": True, "model_path": "/gone"}))
    lora_of(world["model"], run / "adapter")
    assert main(["export", "--adapter", str(run), "--out", str(tmp_path / "merged")]) == 0
    assert json.loads((tmp_path / "merged" / "llmlab_export.json").read_text())["base_model"] == str(world["model"])


def test_export_into_a_folder_it_cannot_write_is_one_line_before_the_merge(world, capsys, tmp_path, monkeypatch):
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    adapter = lora_of(world["model"], tmp_path / "adapter")
    monkeypatch.setattr(tempfile, "mkdtemp", denied)  # chmod does not stop root: the refusal is injected
    line = refusal(capsys, main(["export", "--demo", "--adapter", str(adapter), "--out", str(tmp_path / "out" / "merged")]))
    assert "cannot write to" in line and "Permission denied" in line and "choose a writable --out" in line


def test_a_pretraining_run_folder_is_accepted_as_a_model(world, tmp_path):
    from core.lm.choice import choose_model

    run = tmp_path / "pre-run"
    shutil.copytree(world["model"], run / "model")
    (run / "config.json").write_text(json.dumps({"kind": "pretrain"}))
    assert choose_model(str(run)).path == (run / "model").absolute()


def test_compare_with_a_folder_that_is_not_there_says_so(world, capsys):
    line = refusal(capsys, main(["tokenizer", "train", "--demo", "--compare", "./no_such_tok"]))
    assert "--compare ./no_such_tok does not exist" in line and "--tokenizer" not in line


def test_generate_with_a_run_whose_base_moved_points_at_model(world, capsys, tmp_path):
    from core.generate import model_of_run

    run = tmp_path / "ft-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"kind": "finetune", "model_path": str(tmp_path / "moved-away")}))
    lora_of(world["model"], run / "adapter")
    line = refusal(capsys, main(["generate", "--run", str(run), "--prompt", "hi"]))
    assert "is not there any more" in line and "--model" in line and "--demo" not in line
    assert model_of_run(run, base=str(world["model"])) == (str(world["model"]), [str(run / "adapter")], False)
    assert main(["generate", "--run", str(run), "--model", str(world["model"]), "--prompt", "hi", "--max-new-tokens", "2"]) == 0


def test_generate_refuses_a_prompt_too_long_before_printing_it(world, capsys):
    code = main(["generate", "--model", str(world["gpt2"]), "--prompt", "word " * 400, "--max-new-tokens", "4"])
    out = capsys.readouterr()
    assert code == 2 and out.out == "" and "more than the model's 128-token context" in out.err


def test_resuming_a_completed_fine_tune_says_it_completed(capsys, tmp_path):
    run = tmp_path / "done"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"kind": "finetune", "data": "x"}))
    (run / "summary.json").write_text(json.dumps({"status": "completed"}))
    line = refusal(capsys, main(["finetune", "--resume", str(run)]))
    assert "already completed" in line


def test_an_empty_file_given_as_out_is_called_a_file(world, capsys, tmp_path):
    (tmp_path / "empty-file").write_bytes(b"")
    line = refusal(capsys, main(["eval", "--demo", "--out", str(tmp_path / "empty-file")]))
    assert "is a file" in line and "not empty" not in line


def test_a_stopped_math_run_says_it_stopped(world):
    from core.math.config import demo_config
    from core.math.run import run_math

    said, calls = [], {"n": 0}

    def stop_soon():
        calls["n"] += 1
        return calls["n"] > 12

    summary = run_math(demo_config(max_new_tokens=4, batch_size=2), log=said.append, should_stop=stop_soon)
    assert summary["status"] == "stopped" and summary["n"] < summary["total"]
    assert said[-1].startswith(f"stopped after {summary['n']} of {summary['total']} questions")
    assert read_json(summary["run_dir"] + "/summary.json")["status"] == "stopped"


def test_every_number_option_refuses_nan_and_inf(capsys):
    for args in (["pretrain", "--demo", "--lr", "inf"], ["finetune", "--demo", "--dropout", "nan"],
                 ["math", "--demo", "--tolerance", "nan"], ["squad", "--demo", "--retain-threshold", "inf"]):
        assert "must be a finite number" in refusal(capsys, main(args))
