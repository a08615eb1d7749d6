"""LoRA adapters over a base model: found, checked against the base from file headers alone, loaded, counted.

Shared by every kind that uses an adapter (eval, squad, math, generate, export, fine-tuning's
after-test): the adapter folder a user names (an adapter folder or a fine-tune run folder), a
check that it was trained on a base of this shape before anything runs, peft's loading (several
adapters over one base, each under its own name), and the trainable ratio the contests score.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import UsageError


def adapter_name(index: int) -> str:
    return f"adapter{index}"


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

    from core.textfile import read_text

    try:
        config = json.loads(read_text(adapter_dir / "adapter_config.json", "adapter config"))
    except ValueError as exc:
        raise UsageError(f"{adapter_dir}/adapter_config.json is not JSON ({exc}); save the adapter again") from None
    if not isinstance(config, dict):
        raise UsageError(f"{adapter_dir}/adapter_config.json is not a JSON object; save the adapter again")
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


def recorded_base(spec: str | Path) -> str | None:
    """The base model an adapter says it was trained on: its fine-tune run's (the folder the run loaded, or "demo"),
    else its adapter_config.json's `base_model_name_or_path`; None when neither says."""
    import json

    from core.runs import CONFIG, read_json

    path = Path(spec).expanduser()
    run = read_json(path / CONFIG) if (path / "adapter").is_dir() else read_json(path.parent / CONFIG)
    if run and run.get("kind") == "finetune":
        if run.get("demo"):
            return "demo"
        if run.get("model_path"):
            return str(run["model_path"])
    try:
        config = json.loads((adapter_folder(path) / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UsageError):
        return None
    return config.get("base_model_name_or_path") or None


def _fingerprint(folder: Path) -> tuple:
    """What makes two model folders the same model without loading it: its config, and per weight file its size and
    a hash of a MiB from its middle (the demo model rebuilt in another cache folder is the same model; two random
    models of one shape are not)."""
    import hashlib

    config = (folder / "config.json").read_bytes() if (folder / "config.json").is_file() else b""
    files = []
    for file in sorted(folder.glob("*.safetensors")):
        size = file.stat().st_size
        with open(file, "rb") as fh:
            fh.seek(size // 2)
            files.append((file.name, size, hashlib.sha256(fh.read(2**20)).hexdigest()))
    return config, tuple(files)


def check_base(adapter: Path, base: Path, base_spec: str, demo: bool) -> str | None:
    """Refuse an adapter whose recorded base is a local folder that still exists and is another model; warn (the
    returned line) when it names another hub id or a folder that is gone. None: nothing to say."""
    recorded = recorded_base(adapter)
    if recorded is None or (recorded == "demo" and demo):
        return None
    if recorded == "demo":
        return (f"the adapter in {adapter} was trained on the demo model, and this run uses {base_spec}; pass --demo "
                f"to use the base it was trained on")
    folder = Path(recorded).expanduser()
    if folder.is_dir():
        if folder.resolve() == Path(base).resolve() or _fingerprint(folder) == _fingerprint(Path(base)):
            return None
        raise UsageError(f"the adapter in {adapter} was trained on {folder}, not on {base_spec} ({base}); pass --model "
                         f"{folder}, the base it was trained on")
    if recorded in (base_spec, str(base)):
        return None
    return (f"the adapter in {adapter} names {recorded} as its base, and this run uses {base_spec}; its answers are "
            f"only meaningful on the base it was trained on")
