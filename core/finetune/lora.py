"""LoRA on a base model through peft: which modules to adapt, and the trainable ratio the contests score.

peft does the LoRA itself; this module only resolves `--targets` per architecture (with a clear
error listing the model's linear layers when a name does not exist) and counts parameters the
way seed 001 does: trainable / the base model's own total. peft's `print_trainable_parameters`
divides by base + adapter, which gives a slightly smaller ratio.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import UsageError

# The attention projections per architecture family (seed 001 adapted q/k/v/o only).
_QKVO = ["q_proj", "k_proj", "v_proj", "o_proj"]
# GPT-2's attention is c_attn (q, k and v in one Conv1D) and c_proj; its MLP also has a c_proj,
# so the pattern names the attention block's own (peft takes a regex string as target_modules).
_GPT2_ATTENTION = r".*\.attn\.(c_attn|c_proj)$"


def linear_layer_names(model) -> list[str]:
    """The distinct last names of the model's linear layers (what --targets may name), lm_head excluded."""
    import torch
    from transformers.pytorch_utils import Conv1D

    def linear(module) -> bool:  # a GPTQ layer is no nn.Linear, but has their in/out features and no children
        return isinstance(module, (torch.nn.Linear, Conv1D)) or (
            hasattr(module, "in_features") and hasattr(module, "out_features") and not any(module.children()))

    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if linear(module) and not name.endswith("lm_head")}
    return sorted(names)


def resolve_targets(model, spec: str):
    """peft's target_modules for `spec`: auto, all-linear, or comma-separated module names."""
    return resolve_target_names(getattr(model.config, "model_type", ""), linear_layer_names(model), spec)


def resolve_target_names(model_type: str, available: list[str], spec: str):
    """resolve_targets from the model type and its linear layers' names alone (the memory plan has no model)."""
    spec = spec.strip()
    if spec == "all-linear":
        return "all-linear"
    if spec == "auto":
        if model_type == "gpt2":
            return _GPT2_ATTENTION
        if all(name in available for name in _QKVO):
            return list(_QKVO)
        raise UsageError(f"no default LoRA targets for model type {model_type!r}; pass --targets with some of its linear "
                         f"layers: {', '.join(available)} (or all-linear)")
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        raise UsageError(f"--targets {spec!r}: no linear layer named {', '.join(unknown) or '(none given)'} in this "
                         f"{model_type or 'model'}; its linear layers are: {', '.join(available)} (or use auto, all-linear)")
    return names


def check_targets(model_path: Path, spec: str) -> None:
    """Resolve --targets against the model's layers before anything runs: a skeleton of the model is built on the
    meta device (no weights read, no memory spent), so a name that does not exist is one line before any folder."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    with init_empty_weights():
        skeleton = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_path))
    resolve_targets(skeleton, spec)


def add_lora(model, rank: int, alpha: int, dropout: float, targets: str, seed: int):
    """(the peft model, {trainable_params, total_params, trainable_ratio, target_modules})."""
    import torch
    from peft import LoraConfig, get_peft_model

    from core.lm.quantize import base_parameter_count

    total = base_parameter_count(model)  # the base model's own count, before LoRA (a 4-bit weight counted unpacked)
    target_modules = resolve_targets(model, targets)
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules,
                        task_type="CAUSAL_LM", fan_in_fan_out=getattr(model.config, "model_type", "") == "gpt2")
    torch.manual_seed(seed)  # LoRA's A matrices are random: the same seed gives the same start
    peft_model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    return peft_model, {"trainable_params": trainable, "total_params": total, "trainable_ratio": trainable / total,
                        "target_modules": target_modules if isinstance(target_modules, str) else list(target_modules)}


def prepare_base(model, quantized: bool, checkpointing: bool):
    """The base made ready for LoRA: a quantized one through peft's prepare_model_for_kbit_training (the rest of its
    parameters in fp32, inputs that carry gradients), gradient checkpointing turned on when asked."""
    if quantized:
        from peft import prepare_model_for_kbit_training

        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing,
                                               gradient_checkpointing_kwargs={"use_reentrant": False})
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()  # the frozen embeddings' output must carry a gradient into the checkpoints
    return model
