"""`--plan`: the memory a run will take, from config.json alone, checked against measured peaks on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main

PROBE = Path(__file__).with_name("memory_probe.py")


@pytest.fixture(scope="module")
def probe_model(tmp_path_factory):
    """A Qwen2 big enough that its step's memory dwarfs the process's noise (~29M parameters), saved with random weights."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    folder = tmp_path_factory.mktemp("probe") / "model"
    config = Qwen2Config(vocab_size=50257, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=False)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    return folder


def measured(*args) -> int:
    out = subprocess.run([sys.executable, str(PROBE), *map(str, args)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_growth"]


def planned(capsys, args) -> dict:
    assert main([*args, "--plan", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("quantize", ["none", "nf4"])
def test_the_fine_tune_plan_is_within_25_percent_of_the_measured_peak(probe_model, capsys, quantize):
    plan = planned(capsys, ["finetune", "--model", str(probe_model), "--batch-size", "8", "--max-length", "256",
                            "--rank", "16", "--quantize", quantize, "--no-gradient-checkpointing"])
    peak = measured("finetune", probe_model, 8, 256, 32, 16, quantize)  # 32 target tokens: the plan's assumption
    assert 0.75 <= plan["total"] / peak <= 1.25, (plan["total"], peak, plan["parts"])


def test_the_pretraining_plan_is_within_25_percent_of_the_measured_peak(capsys):
    plan = planned(capsys, ["pretrain", "--model-size", "tiny", "--batch-size", "8", "--block-size", "128"])
    peak = measured("pretrain", "tiny", 8, 128)
    assert 0.75 <= plan["total"] / peak <= 1.25, (plan["total"], peak, plan["parts"])


def test_plan_reads_no_weights_writes_nothing_and_says_what_would_fit(probe_model, capsys, tmp_path, monkeypatch):
    import transformers

    def no_weights(*args, **kwargs):
        raise AssertionError("--plan loaded weights")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_weights)
    monkeypatch.setattr("core.lm.plan.free_memory", lambda: {"device": "cuda", "name": "GPU 0 test", "free": 2 * 10**8,
                                                             "gpus": [{"index": 0, "name": "test", "free": 2 * 10**8}]})
    runs = tmp_path / "runs"
    monkeypatch.setenv("LLMLAB_RUNS_DIR", str(runs))
    assert main(["finetune", "--model", str(probe_model), "--batch-size", "16", "--max-length", "512", "--plan"]) == 0
    text = capsys.readouterr().out
    assert "memory plan for finetune" in text and "does not fit" in text and "to fit: --quantize nf4" not in text
    assert "--micro-batch-size" in text and "weights by quantization: none" in text
    plan = planned(capsys, ["finetune", "--model", str(probe_model), "--quantize", "nf4", "--batch-size", "1",
                            "--max-length", "64"])
    assert plan["fits"] and plan["parts"]["weights"] == plan["weights_by_quantization"]["nf4"]
    # (with kbit preparation the unquantized rest is fp32, so for this embedding-heavy model "none" in bf16 is smaller)
    assert plan["weights_by_quantization"]["nf4"] < plan["weights_by_quantization"]["int8"]
    ev = planned(capsys, ["eval", "--model", str(probe_model), "--batch-size", "4", "--max-new-tokens", "64"])
    assert ev["parts"]["KV cache"] == 2 * 4 * 2 * 64 * 2 * 4 * (256 + 64)  # layers, kv heads, head dim, bf16, batch, tokens
    assert not runs.exists()


def test_plan_on_a_folder_without_config_json_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["finetune", "--model", str(tmp_path / "empty"), "--plan"]) == 2
    err = capsys.readouterr().err
    assert "has no config.json" in err and err.count("llmlab: error:") == 1 and "Traceback" not in err
