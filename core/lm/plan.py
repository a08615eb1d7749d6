"""A memory plan before a run (`--plan`): what the weights, gradients, optimizer state, activations and KV cache
will take, from the model's config.json alone, against the free memory of the visible GPUs (or RAM).

Nothing is loaded: the model is built on PyTorch's meta device (shapes without storage), which counts
its parameters exactly and names its linear layers, so the LoRA adapter and the quantized share of
the weights come out exact. The activations are an estimate, per token and layer, of what autograd
keeps for the backward pass; tests/unit/test_memory_plan.py checks the total against measured peaks.

Bytes per weight:
- none: the dtype's (bf16 on a GPU, fp32 on a CPU; pretraining keeps fp32 master weights);
- nf4: the decoder's linear layers at 4 bits plus one fp32 absmax per 64 weights; the rest (embeddings,
  output layer, norms) in the compute dtype;
- int8: the decoder's linear layers at 8 bits plus one fp32 scale per output row;
- a GPTQ/AWQ checkpoint: its bits plus a scale and zero point per group, the rest in fp16.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.errors import UsageError

GIB = 2**30
# What autograd keeps per token and decoder layer, in activation elements: the normed inputs and the
# q, k, v, attention output and o_proj input (7 widths of the hidden size, the k/v widths counted
# separately), and the MLP's gate, up, activation and product (4 widths of its intermediate size).
ACT_HIDDEN, ACT_INTERMEDIATE = 7, 4
# fp32 logit rows alive at once per predicted token, as measured on the CPU (tests/unit/test_memory_plan.py):
# fine-tuning's target_loss keeps the logits and their log-softmax and then holds both gradients (4);
# transformers' own causal-LM loss, which pretraining uses, peaks at 3.
LOGIT_COPIES = {"target_loss": 4, "hf_loss": 3}
# Target tokens per fine-tuning example whose logits are computed (the answer and EOS; the prompt has none).
TARGET_TOKENS = 32
# Prompt tokens assumed per eval question when the plan cannot see the data.
EVAL_PROMPT_TOKENS = 256
# Free memory kept back for the CUDA context, the allocator's fragmentation and the library's buffers.
HEADROOM = 0.10


@dataclass
class Shape:
    """A causal LM as config.json describes it, with its parameters counted on the meta device."""

    source: str
    model_type: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    params: int                         # every parameter (tied weights once)
    linear_params: int                  # the decoder's linear layers: what bitsandbytes quantizes
    linear_rows: int                    # their output rows (one int8 scale each)
    saved_quantization: dict | None = None
    linears: list = field(default_factory=list, repr=False)  # (name, in, out) of every linear layer


def _read_config(path: Path) -> dict:
    file = path / "config.json"
    if not file.is_file():
        raise UsageError(f"{path} has no config.json; --plan reads the model's config.json (a saved model folder or a "
                         f"Hub id)")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UsageError(f"{file} is not JSON ({exc}); save the model again") from None


def config_of(spec: str, demo: bool = False) -> tuple[dict, str]:
    """(config.json's content, where it came from) for a model folder, a run folder's model, a Hub id or the demo."""
    from core.lm.loading import _looks_like_path

    if demo:
        from core.lm.demo import ensure_demo_model

        path = ensure_demo_model()
        return _read_config(path), str(path)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and (path / "model" / "config.json").is_file():
            path = path / "model"  # a pretraining run folder
        return _read_config(path), str(path)
    if _looks_like_path(spec):
        raise UsageError(f"model folder {path} does not exist; pass an existing folder or a Hub id")
    from core.hub import fetch

    file = fetch(spec, filename="config.json", what=f"{spec} config.json",
                 offline_hint="pass --model /path/to/local/model for a plan offline")
    return json.loads(Path(file).read_text(encoding="utf-8")), spec


def shape_of(config: dict, source: str) -> Shape:
    """The model's shape and exact parameter counts, from its config alone (built on the meta device)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from core.lm.demo import quiet_transformers

    values = {k: v for k, v in config.items() if k not in ("quantization_config", "auto_map")}
    try:
        hf_config = AutoConfig.for_model(**values)
        with quiet_transformers(), torch.device("meta"):
            model = AutoModelForCausalLM.from_config(hf_config)
    except Exception as exc:  # an unknown model_type, a config transformers cannot build
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot plan for the model in {source} ({first})") from None
    text = hf_config.get_text_config() if hasattr(hf_config, "get_text_config") else hf_config
    hidden = getattr(text, "hidden_size", None) or getattr(text, "n_embd")
    heads = getattr(text, "num_attention_heads", None) or getattr(text, "n_head")
    linears, linear_params, rows = [], 0, 0
    from transformers.pytorch_utils import Conv1D

    output = model.get_output_embeddings()
    for name, module in model.named_modules():
        if module is output:
            continue
        if isinstance(module, torch.nn.Linear):
            fan_in, fan_out = module.in_features, module.out_features
        elif isinstance(module, Conv1D):
            fan_in, fan_out = module.weight.shape
        else:
            continue
        linears.append((name, fan_in, fan_out))
        linear_params += fan_in * fan_out
        rows += fan_out
    return Shape(
        source=source, model_type=getattr(text, "model_type", "?"),
        layers=getattr(text, "num_hidden_layers", None) or getattr(text, "n_layer"), hidden=hidden,
        intermediate=getattr(text, "intermediate_size", None) or getattr(text, "n_inner", None) or 4 * hidden,
        heads=heads, kv_heads=getattr(text, "num_key_value_heads", None) or heads,
        head_dim=getattr(text, "head_dim", None) or hidden // heads, vocab=text.vocab_size,
        params=sum(p.numel() for p in model.parameters()), linear_params=linear_params, linear_rows=rows,
        saved_quantization=config.get("quantization_config"), linears=linears,
    )


def weight_bytes(shape: Shape, quantize: str, width: int) -> int:
    """Bytes of the weights loaded as `quantize` (none, nf4, int8) with `width`-byte unquantized parameters."""
    other = shape.params - shape.linear_params
    saved = shape.saved_quantization
    if saved:
        bits, group = int(saved.get("bits", 4)), int(saved.get("group_size", 128) or 128)
        return int(shape.linear_params * (bits / 8 + (2 + bits / 8) / group) + other * 2)
    if quantize == "nf4":
        return int(shape.linear_params * (0.5 + 4 / 64) + other * width)
    if quantize == "int8":
        return int(shape.linear_params + shape.linear_rows * 4 + other * width)
    return shape.params * width


def lora_params(shape: Shape, targets, rank: int) -> int:
    """r × (in + out) for every linear layer peft's `targets` (a list of names, a regex or all-linear) adapts."""
    import re

    total = 0
    for name, fan_in, fan_out in shape.linears:
        last = name.rsplit(".", 1)[-1]
        if targets == "all-linear":
            hit = True
        elif isinstance(targets, str):
            hit = re.fullmatch(targets, name) is not None
        else:
            hit = last in targets
        total += rank * (fan_in + fan_out) if hit else 0
    return total


def activation_bytes(shape: Shape, batch: int, length: int, width: int, checkpointing: bool, logit_tokens: int,
                     loss: str = "target_loss") -> int:
    """What one training step's forward keeps for the backward: every layer's activations, or with gradient
    checkpointing each layer's input plus one layer recomputed; and the fp32 logits of the predicted tokens."""
    tokens = batch * length
    kv = 2 * shape.kv_heads * shape.head_dim
    per_layer = tokens * (ACT_HIDDEN * shape.hidden + kv + ACT_INTERMEDIATE * shape.intermediate) * width
    layers = (shape.layers * tokens * shape.hidden * width + per_layer) if checkpointing else shape.layers * per_layer
    return int(layers + batch * logit_tokens * shape.vocab * 4 * LOGIT_COPIES[loss])


def kv_cache_bytes(shape: Shape, batch: int, length: int, width: int) -> int:
    return 2 * shape.layers * shape.kv_heads * shape.head_dim * width * batch * length


def free_memory() -> dict:
    """{"device": what, "free": bytes, "gpus": [...]}: the visible GPUs' free memory (NVML), or available RAM."""
    import os

    from core.hardware import gpu_live

    gpus = gpu_live()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        wanted = [v.strip() for v in visible.split(",") if v.strip()]
        gpus = [g for g in gpus if str(g["index"]) in wanted]
    if gpus:
        listed = [{"index": g["index"], "name": g["name"],
                   "free": int(((g["memory_total_mib"] or 0) - (g["memory_used_mib"] or 0)) * 2**20)} for g in gpus]
        best = max(listed, key=lambda g: g["free"])
        return {"device": "cuda", "name": f"GPU {best['index']} {best['name']}", "free": best["free"], "gpus": listed}
    import psutil

    return {"device": "cpu", "name": "CPU (no GPU visible): available RAM", "free": int(psutil.virtual_memory().available),
            "gpus": []}


def gib(n: int | float) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB / 100 else f"{n / 2**20:.1f} MiB"


@dataclass
class Plan:
    """A run's memory plan: its parts in bytes, the total, the free memory it is set against and the verdict."""

    kind: str
    model: str
    model_type: str
    device: str
    params: int
    trainable_params: int
    quantize: str
    weights_by_quantization: dict
    parts: dict                       # name -> bytes, summed into total
    notes: list
    total: int = 0
    free: int = 0
    where: str = ""
    fits: bool = False
    advice: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        basis = "its preset" if self.kind == "pretrain" else "config.json only"
        lines = [f"memory plan for {self.kind}: {self.model} ({self.model_type}), from {basis}, nothing loaded",
                 f"  parameters          {self.params:,} ({self.params / 1e9:.2f} B)"]
        if self.trainable_params:
            lines.append(f"  trainable           {self.trainable_params:,} ({self.trainable_params / self.params:.4%})")
        shown = " · ".join(f"{k} {gib(v)}" for k, v in self.weights_by_quantization.items())
        lines.append(f"  weights by quantization: {shown}")
        for name, value in self.parts.items():
            lines.append(f"  {name:<19} {gib(value)}")
        lines.append(f"  total               {gib(self.total)}")
        lines += [f"  note: {n}" for n in self.notes]
        verdict = "fits" if self.fits else "does not fit"
        lines.append(f"{verdict}: {gib(self.total)} of {gib(self.free)} free on {self.where} "
                     f"({self.total / max(self.free, 1):.0%}, {HEADROOM:.0%} kept back)")
        lines += [f"  to fit: {a}" for a in self.advice]
        return "\n".join(lines)

    def line(self) -> str:
        """One line for a form: the total against the free memory and the verdict."""
        verdict = "fits" if self.fits else "too big: " + (self.advice[0] if self.advice else "no setting fits")
        return f"plan: {gib(self.total)} of {gib(self.free)} free on {self.device} · {verdict}"


def settle(plan: Plan, memory: dict, alternatives: list[tuple[str, int]]) -> Plan:
    """Total the parts, set them against the free memory, and list the changes (with their totals) that would fit."""
    plan.total = sum(plan.parts.values())
    plan.free, plan.where, plan.device = memory["free"], memory["name"], memory["device"]
    room = plan.free * (1 - HEADROOM)
    plan.fits = plan.total <= room
    if not plan.fits:
        plan.advice = [f"{what} ({gib(total)})" for what, total in alternatives if total <= room]
        if not plan.advice:
            plan.advice = [f"none of {', '.join(w for w, _ in alternatives)} is enough alone; combine them or use a "
                           f"larger GPU" if alternatives else "use a larger GPU"]
    return plan
