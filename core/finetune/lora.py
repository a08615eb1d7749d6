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

    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
             if isinstance(module, (torch.nn.Linear, Conv1D)) and not name.endswith("lm_head")}
    return sorted(names)


def resolve_targets(model, spec: str):
    """peft's target_modules for `spec`: auto, all-linear, or comma-separated module names."""
    spec = spec.strip()
    model_type = getattr(model.config, "model_type", "")
    available = linear_layer_names(model)
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


def add_lora(model, rank: int, alpha: int, dropout: float, targets: str, seed: int):
    """(the peft model, {trainable_params, total_params, trainable_ratio, target_modules})."""
    import torch
    from peft import LoraConfig, get_peft_model

    total = sum(p.numel() for p in model.parameters())  # the base model's own count, before LoRA
    target_modules = resolve_targets(model, targets)
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules,
                        task_type="CAUSAL_LM", fan_in_fan_out=getattr(model.config, "model_type", "") == "gpt2")
    torch.manual_seed(seed)  # LoRA's A matrices are random: the same seed gives the same start
    peft_model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    return peft_model, {"trainable_params": trainable, "total_params": total, "trainable_ratio": trainable / total,
                        "target_modules": target_modules if isinstance(target_modules, str) else list(target_modules)}


def load_adapter(model, adapter_dir, adapter_name: str = "default"):
    """`model` with the adapter in `adapter_dir` loaded (peft), or one UsageError when it does not fit this base."""
    import warnings

    from peft import PeftModel

    try:
        with warnings.catch_warnings():  # peft calls transformers' deprecated is_gradient_checkpointing on load
            warnings.simplefilter("ignore", FutureWarning)
            if hasattr(model, "peft_config"):  # already a PeftModel: add another adapter by name
                model.load_adapter(str(adapter_dir), adapter_name=adapter_name)
                return model
            return PeftModel.from_pretrained(model, str(adapter_dir), adapter_name=adapter_name)
    except (ValueError, RuntimeError, KeyError) as exc:  # shape mismatches, missing target modules
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"the adapter in {adapter_dir} does not fit this base model ({first}); pass the base model "
                         f"it was trained on") from None


def adapter_folder(spec: str | Path) -> Path:
    """The adapter folder `spec` names: a folder with adapter_config.json, or a fine-tune run folder (its adapter/)."""
    path = Path(spec).expanduser()
    if (path / "adapter_config.json").is_file():
        return path
    if (path / "adapter" / "adapter_config.json").is_file():
        return path / "adapter"
    if not path.exists():
        raise UsageError(f"adapter {path} does not exist; pass an adapter folder (adapter_config.json) or a fine-tune run folder")
    raise UsageError(f"{path} holds no adapter (no adapter_config.json, no adapter/ inside); pass an adapter folder "
                     f"or a finished fine-tune run folder")


def _base_shapes(model_path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape of a saved model, from the safetensors headers only (no weights are read)."""
    from safetensors import safe_open

    shapes = {}
    for file in sorted(Path(model_path).glob("*.safetensors")):
        with safe_open(str(file), "pt") as fh:
            for key in fh.keys():
                shapes[key] = fh.get_slice(key).get_shape()
    return shapes


def check_adapter_fits(model_path: Path, adapter_dir: Path) -> None:
    """Refuse, before anything runs, an adapter trained on another base: every adapted layer must exist in
    this model with the adapter's input width. Reads only file headers, so it is cheap."""
    import json

    from safetensors import safe_open

    try:
        config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UsageError(f"{adapter_dir}/adapter_config.json is not JSON ({exc}); save the adapter again") from None
    if config.get("peft_type") != "LORA":
        raise UsageError(f"{adapter_dir} is a {config.get('peft_type')} adapter; llmlab loads LoRA adapters")
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        raise UsageError(f"{adapter_dir} has no adapter_model.safetensors; save the adapter with safetensors")
    base = _base_shapes(model_path)
    with safe_open(str(weights), "pt") as fh:
        for key in fh.keys():
            if ".lora_A." not in key:
                continue
            name = key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight").replace(".lora_A.default", "")
            shape = fh.get_slice(key).get_shape()
            if name not in base:
                raise UsageError(f"the adapter in {adapter_dir} does not fit the model in {model_path}: it adapts {name}, "
                                 f"which this model does not have (trained on {config.get('base_model_name_or_path')}?)")
            if shape[1] not in base[name]:
                raise UsageError(f"the adapter in {adapter_dir} does not fit the model in {model_path}: {name} takes "
                                 f"{shape[1]} inputs in the adapter, the model's is {base[name]} (another base model?)")
