"""Quantized bases: bitsandbytes NF4 / int8 on load (`--quantize`), and checkpoints saved already quantized (GPTQ, AWQ).

Shared by every kind that loads a model. Light to import (no torch): the kinds' config modules take
their `--quantize` option from here, and the checks read only config.json, so bad input is refused
before a run folder exists.

- `--quantize nf4|int8` loads the base through transformers' `BitsAndBytesConfig` (bitsandbytes runs
  both on CUDA and, from 0.49 on, on the CPU). The 4-bit compute dtype is bf16 on a GPU and fp32 on
  a CPU, where bf16 matmuls are slow.
- A folder whose config.json carries a `quantization_config` (GPTQ, AWQ, ...) is already quantized:
  transformers loads it through its own integration, which needs that method's package
  (GPT-QModel for GPTQ). Quantizing it again is refused, and so is such a folder when the package
  is missing, each in one line.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from core.errors import UsageError

QUANTIZE = ("none", "nf4", "int8")
# Pre-quantized checkpoints: the package transformers' integration needs for each quant_method.
PREQUANTIZED_PACKAGES = {"gptq": "gptqmodel", "awq": "gptqmodel", "bitsandbytes": "bitsandbytes"}
PACKAGE_HINT = {
    "gptqmodel": "GPT-QModel (pip install gptqmodel optimum; it builds CUDA kernels, see docs/finetune.md)",
    "bitsandbytes": "bitsandbytes (pip install bitsandbytes)",
}


def quantize_option():
    """The `quantize` config field, the same for every kind that loads a model."""
    from core.options import option

    return option("none", "Load the base quantized with bitsandbytes: nf4 (4-bit NormalFloat) or int8; the compute "
                  "dtype is bf16 on a GPU, fp32 on a CPU. Not for a GPTQ/AWQ folder, which is quantized already.",
                  choices=QUANTIZE, label="Quantize")


def check_name(quantize: str) -> None:
    if quantize not in QUANTIZE:
        raise UsageError(f"--quantize {quantize} is not one of {', '.join(QUANTIZE)}")


def check_available(quantize: str) -> None:
    """The name is known, and bitsandbytes is installed when it is needed."""
    check_name(quantize)
    if quantize != "none" and not _installed("bitsandbytes"):
        raise UsageError(f"--quantize {quantize} needs bitsandbytes, which is not installed: pip install bitsandbytes")


def saved_quantization(path: Path) -> str | None:
    """The quant_method a model folder was saved with ("gptq", "awq", "bitsandbytes", ...), from config.json; None if plain."""
    from core.runs import read_json

    config = read_json(Path(path) / "config.json") or {}
    section = config.get("quantization_config") or (config.get("text_config") or {}).get("quantization_config")
    if not isinstance(section, dict):
        return None
    method = section.get("quant_method")
    if method == "bitsandbytes" or section.get("load_in_4bit") or section.get("load_in_8bit"):
        return "bitsandbytes"
    return str(method or "unknown")


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def check_quantization(path: Path, quantize: str) -> str | None:
    """Refuse, from config.json alone, what cannot load; returns the folder's own quant_method (None: plain weights)."""
    check_name(quantize)
    saved = saved_quantization(path)
    if saved is not None and quantize != "none":
        raise UsageError(f"{path} is already quantized ({saved}, in its config.json); drop --quantize {quantize}: "
                         f"it loads as it was saved")
    check_available(quantize)
    if saved is not None:
        package = PREQUANTIZED_PACKAGES.get(saved)
        if package is None:
            raise UsageError(f"{path} is saved quantized with {saved}, which llmlab does not load; "
                             f"use a plain (16-bit) checkpoint with --quantize nf4")
        if not _installed(package):
            raise UsageError(f"{path} is a {saved.upper()} checkpoint; loading it needs {PACKAGE_HINT[package]}, which "
                             f"is not installed. Or use the plain (16-bit) model with --quantize nf4")
    return saved


def compute_dtype(device: str):
    """bf16 on a GPU that supports it, else fp32 (a CPU has no fast bf16 matmul)."""
    import torch

    return torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32


def bnb_config(quantize: str, device: str):
    """transformers' BitsAndBytesConfig for `quantize`, or None for "none"."""
    if quantize == "none":
        return None
    from transformers import BitsAndBytesConfig

    if quantize == "nf4":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype(device),
                                  bnb_4bit_use_double_quant=False)
    return BitsAndBytesConfig(load_in_8bit=True)


def quantization_label(quantize: str, saved: str | None) -> str:
    """What summaries record as `quantization`: "nf4", "int8", "gptq", ... or "none"."""
    return saved or quantize


def base_parameter_count(model) -> int:
    """The base model's own parameter count, whatever its storage: transformers counts a bitsandbytes 4-bit weight's
    packed bytes back into parameters (`num_parameters`); a GPTQ/AWQ model's packed integer weights are buffers, so
    its count comes from its config, built on the meta device (core/lm/plan.py)."""
    saved = getattr(model.config, "quantization_config", None)
    method = saved.get("quant_method") if isinstance(saved, dict) else getattr(saved, "quant_method", None)
    if str(getattr(method, "value", method) or "").lower() in ("gptq", "awq"):
        from core.lm.plan import shape_of

        return shape_of(model.config.to_dict(), "the loaded model").params
    if getattr(model, "is_quantized", False) or getattr(model, "hf_quantizer", None) is not None:
        return int(model.num_parameters())
    return sum(p.numel() for p in model.parameters())
