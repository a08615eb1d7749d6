"""`llmlab export`: merge a LoRA adapter into its base and save a plain Hugging Face model folder.

The folder holds safetensors weights, the tokenizer and the generation config, loads with
AutoModelForCausalLM alone (no peft) and gives the logits base + adapter gives. It is written to a
temporary sibling and renamed into place, so a half-written export never looks complete. Not a job
kind with a run folder: its output is a model folder, whose config.json is the model's own.

An adapter trained over a bitsandbytes base (`finetune --quantize`) is merged into a full-precision
load of the same base, as peft advises (merging into 4-bit weights changes generations); `--quantize`
then saves the merged model quantized (bitsandbytes serializes it; loading it needs bitsandbytes).
An adapter on a GPTQ/AWQ base cannot be merged into its packed weights and is refused in one line.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import click

from core.errors import UsageError

PROVENANCE = "llmlab_export.json"


def export_merged(model: str | None, adapter: str, out: str | Path, demo: bool = False, log=None,
                  quantize: str = "none") -> Path:
    """Merge `adapter` into `model` and save the result at `out` (which must not exist yet, or be empty); with
    `quantize` (nf4, int8) the merged model is saved quantized by bitsandbytes.

    Without `model` the base is the one the adapter's fine-tune run (or its adapter_config.json) recorded.
    """
    import torch

    from core.hardware import snapshot
    from core.lm.adapters import adapter_folder, load_adapter, recorded_base
    from core.lm.choice import choose_model
    from core.lm.loading import resolve_model
    from core.lm.quantize import check_available, saved_quantization

    out = Path(out).expanduser()
    if out.is_file():
        raise UsageError(f"--out {out} is a file; choose a new folder so nothing is overwritten")
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out} already exists and is not empty; choose a new folder so nothing is overwritten")
    check_available(quantize)
    adapter_folder(adapter)  # a missing adapter says so before anything else
    if model is None and not demo:
        model = recorded_base(adapter)
        if model is None:
            raise UsageError(f"{adapter} does not say which base it was trained on; pass --model, that base")
        demo = model == "demo"
    saved = None if demo else saved_quantization(resolve_model(model))
    if saved is not None:
        raise UsageError(f"{model} is a {saved.upper()} checkpoint: an adapter cannot be merged into its packed weights. "
                         f"The adapter itself works as it is: llmlab eval --model {model} --adapter {adapter}")
    choice = choose_model(model or "demo", [adapter], demo)
    for note in choice.notes:
        (log or print)(f"llmlab: {note}")
    tmp = _claim_tmp(out)  # before the merge: an unwritable --out costs nothing
    try:
        from transformers import AutoModelForCausalLM

        from core.lm.demo import quiet_transformers

        base_config = json.loads((choice.path / "config.json").read_text(encoding="utf-8"))
        saved_dtype = base_config.get("torch_dtype") or base_config.get("dtype")
        with quiet_transformers():
            base = AutoModelForCausalLM.from_pretrained(choice.path, dtype=torch.float32)  # merge in full precision
        merged = load_adapter(base, choice.adapters[0]).merge_and_unload()
        if saved_dtype in ("bfloat16", "float16"):
            merged = merged.to(getattr(torch, saved_dtype))  # stored as the base was
        with quiet_transformers():
            merged.save_pretrained(tmp, safe_serialization=True)
            if quantize != "none":
                merged = _quantized(tmp, quantize)
                for file in tmp.glob("*.safetensors*"):
                    file.unlink()
                merged.save_pretrained(tmp, safe_serialization=True)
        choice.tokenizer.save_pretrained(tmp)
        (tmp / PROVENANCE).write_text(json.dumps({
            "base_model": str(choice.path), "adapter": str(choice.adapters[0]), "merged": True,
            "merged_in": "float32", "saved_quantization": quantize,
            "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": {k: snapshot()[k] for k in ("torch", "transformers")},
        }, indent=2), encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty, checked above
        tmp.replace(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a half-written export never looks complete
        raise
    return out


def _claim_tmp(out: Path) -> Path:
    """A temporary sibling of `out` to write the export into (renamed into place at the end), or one UsageError."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    except OSError as exc:
        raise UsageError(f"cannot write to {out.parent} ({exc.strerror}); choose a writable --out") from None


def _quantized(folder: Path, quantize: str):
    """The merged model saved in `folder`, loaded again through bitsandbytes (on the CPU, where it is saved from)."""
    from transformers import AutoModelForCausalLM

    from core.lm.quantize import bnb_config

    return AutoModelForCausalLM.from_pretrained(folder, quantization_config=bnb_config(quantize, "cpu"), device_map={"": "cpu"})


@click.command("export")
@click.option("--model", default=None, help="The base model the adapter was trained on.  [default: the base its fine-tune "
                                            "run or adapter_config.json recorded]")
@click.option("--adapter", required=True, metavar="DIR", help="The adapter: its folder or a fine-tune run folder.")
@click.option("--out", required=True, metavar="DIR", help="The new model folder (must not exist yet).")
@click.option("--demo", is_flag=True, help="The base is the tiny demo model (for an adapter from `llmlab finetune --demo`).")
@click.option("--quantize", type=click.Choice(("none", "nf4", "int8")), default="none", show_default=True,
              help="Save the merged model quantized by bitsandbytes. The merge itself is always into a full-precision "
                   "load of the base, whatever the adapter was trained over.")
def export_command(model, adapter, out, demo, quantize) -> int:
    """Merge a LoRA adapter into its base model and save a plain Hugging Face model folder."""
    path = export_merged(model, adapter, out, demo=demo, log=lambda line: click.echo(line, err=True), quantize=quantize)
    click.echo(f"merged model saved to {path} (loads with AutoModelForCausalLM.from_pretrained)")
    return 0
