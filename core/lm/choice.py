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
    quantize: str = "none"           # bitsandbytes on load: none, nf4, int8
    saved_quantization: str | None = None  # the folder's own (gptq, awq, ...): it loads quantized as saved
    chat: bool = False               # prompts go through the tokenizer's chat template as the user turn

    @property
    def quantization(self) -> str:
        """What a summary records: nf4, int8, gptq, ... or none."""
        return self.saved_quantization or self.quantize

    def render(self, prompts: list[str]) -> list[str]:
        """The prompts as the model sees them: as given, or each as the user turn of its chat template."""
        if not self.chat:
            return list(prompts)
        from core.lm.chat import user_turns

        return user_turns(self.tokenizer, prompts)


def choose_model(spec: str, adapters: list[str] | tuple = (), demo: bool = False, quantize: str = "none",
                 chat: bool = False) -> ModelChoice:
    """Resolve and check the base model and adapters; bad input is one UsageError and nothing is written.

    `quantize` (bitsandbytes) and a folder saved quantized are checked from config.json; `chat` needs a
    tokenizer with a chat template.
    """
    from core.lm import demo as demo_mod
    from core.lm.adapters import adapter_folder, check_adapter_fits, check_base
    from core.lm.loading import check_model_folder, load_tokenizer, resolve_model
    from core.lm.quantize import check_quantization

    path = Path(demo_mod.ensure_demo_model() if demo else resolve_model(spec)).absolute()
    saved = check_quantization(path, quantize)
    check_model_folder(path)
    folders = [adapter_folder(a).absolute() for a in adapters]
    notes = []
    for folder in folders:
        if saved is None:  # a quantized checkpoint's headers hold packed tensors, not the shapes an adapter sees
            check_adapter_fits(path, folder)
        note = check_base(folder, path, "the demo model" if demo else spec, demo)
        if note:
            notes.append(note)
    tokenizer = load_tokenizer(path)
    if chat:
        from core.lm.chat import check_chat_template

        check_chat_template(tokenizer, str(path))
    label = (demo_mod.DEMO_LABEL if demo else spec) + "".join(f" + adapter {a}" for a in folders)
    return ModelChoice(path=path, label=label, tokenizer=tokenizer, adapters=folders, demo=demo, quantize=quantize,
                       saved_quantization=saved, chat=chat, notes=notes)


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    dtype: str
    device: str
    seconds: float
    quantization: str = "none"

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
    """The base model in eval mode on the best device, with every adapter loaded under its own name (the first active).

    A quantized base (choice.quantize) keeps its linear layers quantized; the rest is in `dtype_name`.
    """
    import torch

    from core.lm.adapters import adapter_name, load_adapter
    from core.lm.loading import load_model, pick_device, resolve_dtype

    if threads:
        torch.set_num_threads(threads)
    device = pick_device()
    dtype, dtype_name = resolve_dtype(dtype_name, device)
    start = time.perf_counter()
    model, tokenizer = load_model(choice.path, dtype, device, choice.tokenizer, quantize=choice.quantize)
    for i, folder in enumerate(choice.adapters):
        model = load_adapter(model, folder, adapter_name=adapter_name(i))
    if choice.adapters:
        model.set_adapter(adapter_name(0))
    return LoadedModel(model.eval(), tokenizer, dtype_name, device, time.perf_counter() - start, choice.quantization)
