"""LoRA over a 4-bit and an 8-bit base (bitsandbytes on the CPU): training, loading the adapter back, eval, export, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from core.cli import main
from core.finetune.config import demo_config
from core.finetune.run import run_finetune
from core.lm import demo as demo_mod
from core.runs import iter_jsonl, read_json

# One worker trains the module's NF4 adapter once (scripts/test.sh runs xdist with --dist loadgroup).
pytestmark = [pytest.mark.usefixtures("shared_demo_model"), pytest.mark.xdist_group("nf4-adapter")]


def quiet(_line: str) -> None:
    pass


def small(out, **kw):
    return demo_config(out=str(out), **{"epochs": 2, "val_per_subject": 2, "test_per_subject": 2, "shuffle_copies": 1,
                                        "test_max_new_tokens": 6, "max_length": 128, **kw})


@pytest.fixture(scope="module")
def nf4_run(demo_model_cache, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMLAB_CACHE_DIR", str(demo_model_cache))
        out = tmp_path_factory.mktemp("nf4") / "run"
        yield out, run_finetune(small(out, quantize="nf4"), log=quiet)


def _losses(run) -> list[float]:
    return [e["loss"] for e in iter_jsonl(run / "events.jsonl") if e["type"] == "loss"]


def test_nf4_lora_trains_with_a_falling_loss_and_records_the_quantization(nf4_run):
    out, summary = nf4_run
    assert summary["status"] == "completed" and summary["quantization"] == "nf4"
    losses = _losses(out)
    assert losses[-1] < losses[0] - 0.3, losses
    assert "gradient checkpointing" in summary["optimizations"]  # on by default over a quantized base
    # the ratio divides by the base's own parameters, not by the packed 4-bit storage
    base_total = sum(p.numel() for p in demo_mod.build_tiny_qwen2(demo_mod.gpt2_tokenizer()).parameters())
    assert summary["total_params"] == base_total and summary["trainable_params"] == 7168
    assert summary["first_prompt"].startswith("问题: ")


def test_int8_lora_trains_with_a_falling_loss(tmp_path):
    summary = run_finetune(small(tmp_path / "int8", quantize="int8", gradient_checkpointing=False), log=quiet)
    assert summary["status"] == "completed" and summary["quantization"] == "int8"
    losses = _losses(tmp_path / "int8")
    assert losses[-1] < losses[0] - 0.3, losses
    assert "gradient checkpointing" not in summary["optimizations"]


def test_the_nf4_adapter_loads_on_the_full_and_the_quantized_base_and_changes_answers(nf4_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from core.lm.engine import generate_answers
    from core.lm.loading import load_model, load_tokenizer

    folder = demo_mod.ensure_demo_model()
    tokenizer = load_tokenizer(folder)
    prompts = [r["prompt"] for r in iter_jsonl(nf4_run[0] / "data" / "test.jsonl")]
    adapter = str(nf4_run[0] / "adapter")

    def texts(model):
        return [g.text for g in generate_answers(model.eval(), tokenizer, prompts, max_new_tokens=8, batch_size=8)[0]]

    full = AutoModelForCausalLM.from_pretrained(folder)
    plain_full = texts(full)
    assert texts(PeftModel.from_pretrained(full, adapter)) != plain_full
    quantized, _ = load_model(folder, torch.float32, "cpu", tokenizer, quantize="nf4")
    assert type(quantized.model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    plain_quantized = texts(quantized)
    assert texts(PeftModel.from_pretrained(quantized, adapter)) != plain_quantized


def test_eval_with_nf4_and_the_adapter_runs(nf4_run, tmp_path):
    out = tmp_path / "ev"
    assert main(["eval", "--demo", "--quantize", "nf4", "--adapter", str(nf4_run[0]), "--subject", "all", "--limit", "4",
                 "--max-new-tokens", "4", "--out", str(out)]) == 0
    summary = read_json(out / "summary.json")
    assert summary["quantization"] == "nf4" and summary["n"] == 4 and summary["adapter"] == str(nf4_run[0] / "adapter")
    assert read_json(out / "config.json")["settings"]["quantize"] == "nf4"  # a resume must load it the same way


def test_export_merges_a_qlora_adapter_into_the_full_precision_base_exactly(nf4_run, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from core.lm.quantize import bnb_config

    folder = demo_mod.ensure_demo_model()
    out = tmp_path / "merged"
    assert main(["export", "--demo", "--adapter", str(nf4_run[0]), "--out", str(out)]) == 0
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(folder), str(nf4_run[0] / "adapter")).eval()
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = torch.randint(0, 50000, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, tuned(ids).logits, atol=1e-5, rtol=1e-5)
    # --quantize nf4 saves that merged model quantized: the same as loading the 16-bit export through bitsandbytes
    small_out = tmp_path / "merged-nf4"
    assert main(["export", "--demo", "--adapter", str(nf4_run[0]), "--quantize", "nf4", "--out", str(small_out)]) == 0
    assert read_json(small_out / "config.json")["quantization_config"]["bnb_4bit_quant_type"] == "nf4"
    saved = AutoModelForCausalLM.from_pretrained(small_out, device_map={"": "cpu"}).eval()
    again = AutoModelForCausalLM.from_pretrained(out, quantization_config=bnb_config("nf4", "cpu"), device_map={"": "cpu"}).eval()
    with torch.no_grad():
        torch.testing.assert_close(saved(ids).logits, again(ids).logits)
    assert (small_out / "model.safetensors").stat().st_size < (out / "model.safetensors").stat().st_size


def _gptq_folder(path):
    """A folder whose config.json says GPTQ (what transformers reads first); no real packed weights are needed to be refused."""
    folder = demo_mod.ensure_demo_model()
    path.mkdir()
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    (path / "config.json").write_text(json.dumps(config))
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (path / name).write_bytes((folder / name).read_bytes())
    return path


def test_quantize_on_a_gptq_folder_is_one_line_and_leaves_nothing(tmp_path, capsys):
    gptq = _gptq_folder(tmp_path / "gptq")
    from core.eval.config import DEMO_DATA

    assert main(["eval", "--model", str(gptq), "--data", str(DEMO_DATA), "--quantize", "nf4", "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert "already quantized (gptq" in err and "drop --quantize nf4" in err and err.count("llmlab: error:") == 1
    assert "Traceback" not in err and not (tmp_path / "ev").exists()


def test_a_gptq_folder_without_gptqmodel_says_what_is_missing(tmp_path, capsys, monkeypatch):
    import core.lm.quantize as quantize

    monkeypatch.setattr(quantize, "_installed", lambda package: package != "gptqmodel")
    gptq = _gptq_folder(tmp_path / "gptq")
    args = ["finetune", "--model", str(gptq), "--data", str(demo_config().data), "--val-per-subject", "2",
            "--test-per-subject", "2", "--out", str(tmp_path / "ft")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "is a GPTQ checkpoint; loading it needs GPT-QModel" in err and err.count("llmlab: error:") == 1
    assert not (tmp_path / "ft").exists()


def test_export_refuses_an_adapter_on_a_gptq_base_and_points_at_eval(nf4_run, tmp_path, capsys):
    gptq = _gptq_folder(tmp_path / "gptq")
    assert main(["export", "--model", str(gptq), "--adapter", str(nf4_run[0]), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "GPTQ checkpoint" in err and "llmlab eval --model" in err and err.count("llmlab: error:") == 1
    assert not (tmp_path / "m").exists()
