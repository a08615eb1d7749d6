"""LoRA over a GPTQ checkpoint (GPT-QModel's CPU kernels), quantized in the test: train, eval --adapter, export refused.

Runs where the `gptq` extra is installed (scripts/test-gptq.sh builds that venv in CI); skipped elsewhere.
"""

from __future__ import annotations

import pytest

pytest.importorskip("gptqmodel")

from core.cli import main  # noqa: E402
from core.runs import read_json  # noqa: E402


@pytest.fixture(scope="module")
def gptq_model(tmp_path_factory):
    """The demo's tiny Qwen2 quantized to 4-bit GPTQ (group 32) on a few sentences, saved with its tokenizer."""
    import os

    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")  # its default on a 2-core machine asks its pool for too few
    from gptqmodel import GPTQModel, QuantizeConfig

    from core.lm.demo import build_tiny_qwen2, gpt2_tokenizer

    root = tmp_path_factory.mktemp("gptq")
    tokenizer = gpt2_tokenizer()
    build_tiny_qwen2(tokenizer, seed=2).save_pretrained(root / "plain")
    tokenizer.save_pretrained(root / "plain")
    here = os.getcwd()
    os.chdir(root)  # GPT-QModel writes a logs/ folder into the working directory while it quantizes
    try:
        model = GPTQModel.load(str(root / "plain"), QuantizeConfig(bits=4, group_size=32), device="cpu")
        model.quantize([f"Question {i}: which option is right? The answer is {'ABCD'[i % 4]}." for i in range(16)],
                       batch_size=4)
        model.save(str(root / "gptq"))
    finally:
        os.chdir(here)
    tokenizer.save_pretrained(root / "gptq")
    return root / "gptq"


def test_lora_over_a_gptq_base_trains_and_its_adapter_evaluates(gptq_model, tmp_path, shared_demo_model):
    from core.finetune.config import DEMO_EXAMS

    out = tmp_path / "ft"
    assert main(["finetune", "--model", str(gptq_model), "--data", str(DEMO_EXAMS), "--epochs", "1", "--lr", "3e-3",
                 "--val-per-subject", "2", "--test-per-subject", "1", "--shuffle-copies", "1", "--max-length", "128",
                 "--test-max-new-tokens", "4", "--no-gradient-checkpointing", "--out", str(out)]) == 0
    summary = read_json(out / "summary.json")
    assert summary["quantization"] == "gptq" and summary["trainable_params"] == 14336
    from core.lm.demo import build_tiny_qwen2, gpt2_tokenizer

    assert summary["total_params"] == sum(p.numel() for p in build_tiny_qwen2(gpt2_tokenizer()).parameters())
    losses = [e["loss"] for e in __import__("core.runs", fromlist=["iter_jsonl"]).iter_jsonl(out / "events.jsonl")
              if e["type"] == "loss"]
    assert losses[-1] < losses[0]
    assert main(["eval", "--model", str(gptq_model), "--adapter", str(out), "--data",
                 str(__import__("core.eval.config", fromlist=["DEMO_DATA"]).DEMO_DATA), "--limit", "3",
                 "--max-new-tokens", "4", "--out", str(tmp_path / "ev")]) == 0
    assert read_json(tmp_path / "ev" / "summary.json")["quantization"] == "gptq"
    assert main(["export", "--model", str(gptq_model), "--adapter", str(out), "--out", str(tmp_path / "m")]) == 2
    assert not (tmp_path / "m").exists()
