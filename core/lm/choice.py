"""A base model and its adapters: chosen and checked before a run starts, loaded for generation once it runs.

Shared by every kind that answers with a model (eval, squad, math, export): the demo model or a
local/hub folder, the model's own tokenizer (left padding), LoRA adapters checked against the base
from file headers alone, and peft's multi-adapter switching so several adapters share one base.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B"  # the seed task's model: what a kind answers with when no --model is given


@dataclass
class ModelChoice:
    path: Path                       # the base model's folder
    label: str                       # what reports call it
    tokenizer: object                # the model's own, padding on the left
    adapters: list[Path] = field(default_factory=list)
    demo: bool = False
    notes: list[str] = field(default_factory=list)  # warnings a run logs (an adapter naming another base)


def choose_model(spec: str, adapters: list[str] | tuple = (), demo: bool = False) -> ModelChoice:
    """Resolve and check the base model and adapters; bad input is one UsageError and nothing is written."""
    from core.lm import demo as demo_mod
    from core.lm.adapters import adapter_folder, check_adapter_fits, check_base
    from core.lm.loading import check_model_folder, load_tokenizer, resolve_model

    path = Path(demo_mod.ensure_demo_model() if demo else resolve_model(spec)).absolute()
    check_model_folder(path)
    folders = [adapter_folder(a).absolute() for a in adapters]
    notes = []
    for folder in folders:
        check_adapter_fits(path, folder)
        note = check_base(folder, path, "the demo model" if demo else spec, demo)
        if note:
            notes.append(note)
    label = (demo_mod.DEMO_LABEL if demo else spec) + "".join(f" + adapter {a}" for a in folders)
    return ModelChoice(path=path, label=label, tokenizer=load_tokenizer(path), adapters=folders, demo=demo, notes=notes)


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
            from core.lm.adapters import adapter_name

            self.model.set_adapter(adapter_name(index))


def load_for_generation(choice: ModelChoice, dtype_name: str = "auto", threads: int | None = None) -> LoadedModel:
    """The base model in eval mode on the best device, with every adapter loaded under its own name (the first active)."""
    import torch

    from core.lm.adapters import adapter_name, load_adapter
    from core.lm.loading import load_model, pick_device, resolve_dtype

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
