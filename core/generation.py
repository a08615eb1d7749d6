"""A base model and its adapters: chosen and checked before a run starts, loaded for generation once it runs.

Shared by every kind that answers with a model (eval, squad, math, export): the demo model or a
local/hub folder, the model's own tokenizer (left padding), LoRA adapters checked against the base
from file headers alone, and peft's multi-adapter switching so several adapters share one base.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UsageError


@dataclass
class ModelChoice:
    path: Path                       # the base model's folder
    label: str                       # what reports call it
    tokenizer: object                # the model's own, padding on the left
    adapters: list[Path] = field(default_factory=list)
    demo: bool = False


def choose_model(spec: str, adapters: list[str] | tuple = (), demo: bool = False) -> ModelChoice:
    """Resolve and check the base model and adapters; bad input is one UsageError and nothing is written."""
    from core.evaluate import demo as demo_mod
    from core.evaluate.loading import check_model_folder, load_tokenizer, resolve_model
    from core.finetune.lora import adapter_folder, check_adapter_fits

    path = Path(demo_mod.ensure_demo_model() if demo else resolve_model(spec)).absolute()
    check_model_folder(path)
    folders = [adapter_folder(a).absolute() for a in adapters]
    for folder in folders:
        check_adapter_fits(path, folder)
    label = (demo_mod.DEMO_LABEL if demo else spec) + "".join(f" + adapter {a}" for a in folders)
    return ModelChoice(path=path, label=label, tokenizer=load_tokenizer(path), adapters=folders, demo=demo)


def adapter_name(index: int) -> str:
    return f"adapter{index}"


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    dtype: str
    device: str
    seconds: float

    def use_adapter(self, index: int | None) -> None:
        """Switch to adapter `index` (peft's set_adapter), or None for the base model alone."""
        if not hasattr(self.model, "set_adapter"):
            if index is not None:
                raise ValueError("this model has no adapters loaded")
            return
        if index is None:
            self.model.base_model.disable_adapter_layers()
        else:
            self.model.base_model.enable_adapter_layers()
            self.model.set_adapter(adapter_name(index))


def load_for_generation(choice: ModelChoice, dtype_name: str = "auto", threads: int | None = None) -> LoadedModel:
    """The base model in eval mode on the best device, with every adapter loaded under its own name (the first active)."""
    import torch

    from core.evaluate.loading import load_model, pick_device, resolve_dtype
    from core.finetune.lora import load_adapter

    if threads:
        torch.set_num_threads(threads)
    device = pick_device()
    dtype, dtype_name = resolve_dtype(dtype_name, device)
    start = time.perf_counter()
    model, tokenizer = load_model(choice.path, dtype, device, choice.tokenizer)
    for i, folder in enumerate(choice.adapters):
        model = load_adapter(model, folder, adapter_name=adapter_name(i))
    if choice.adapters:
        model.set_adapter(adapter_name(0))
    return LoadedModel(model.eval(), tokenizer, dtype_name, device, time.perf_counter() - start)


def _tensor_count(path: Path, keep=lambda key: True) -> int:
    from math import prod

    from safetensors import safe_open

    total = 0
    for file in ([path] if path.is_file() else sorted(path.glob("*.safetensors"))):
        with safe_open(str(file), "pt") as fh:
            total += sum(prod(fh.get_slice(k).get_shape()) for k in fh.keys() if keep(k))
    return total


def adapter_ratio(model_path: Path, adapter_dir: Path) -> dict:
    """{trainable_params, total_params, trainable_ratio} of an adapter, from file headers: the adapter's
    LoRA tensors over the base model's own parameters (tied weights are stored, and counted, once)."""
    trainable = _tensor_count(adapter_dir / "adapter_model.safetensors", lambda k: "lora_" in k)
    total = _tensor_count(model_path)
    if not total:
        raise UsageError(f"{model_path} has no safetensors weights to count the trainable ratio against")
    return {"trainable_params": trainable, "total_params": total, "trainable_ratio": trainable / total}


def generate_sharded(model, tokenizer, prompts: list[str], on_row, **options):
    """generate_answers over this rank's share of `prompts` (all of them with one process).

    Rank 0 gets every row through `on_row(index, generation)`: its own share as each row ends, the
    other ranks' when they are done (gathered with torch.distributed). The other ranks call nothing.
    """
    from core.distributed import gather, world
    from core.evaluate.engine import generate_answers

    w = world()
    if not w.distributed:
        return generate_answers(model, tokenizer, prompts, on_row=on_row, **options)
    start, end = w.rank * len(prompts) // w.size, (w.rank + 1) * len(prompts) // w.size
    mine: list = []

    def local(i, generation):
        if w.main:
            on_row(start + i, generation)
        else:
            mine.append((start + i, generation))

    if end > start:
        generate_answers(model, tokenizer, prompts[start:end], on_row=local, **options)
    shares = gather(mine)
    if w.main:
        for share in shares[1:]:
            for i, generation in share:
                on_row(i, generation)
