"""Where the model and the data come from, and loading the model the way a real run does.

Hub names are resolved to local folders first (the local Hugging Face cache), then, only if
the Hub answers a quick connection probe, downloaded. Offline, the default command therefore
fails within seconds with one line instead of hanging in hub retries.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import UsageError
from core.hub import hub_offline_reason

DEFAULT_DATA = "openai/MMMLU"
# Files a causal LM needs; skips other weight formats (.bin, .gguf, onnx) a repo may also carry.
MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.py"]


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.count("/") != 1 or spec.endswith(".csv") or os.sep != "/" and os.sep in spec


def resolve_model(spec: str) -> Path:
    """A local folder holding the model: `spec` itself, or the Hub repo `spec` from cache/download."""
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(f"model folder {path} has no config.json; point --model at a saved model folder or a Hub id")
        return path
    if _looks_like_path(spec):
        raise UsageError(f"model folder {path} does not exist; pass an existing folder, a Hub id like Qwen/Qwen2.5-0.5B, or use --demo")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(spec, allow_patterns=MODEL_FILES, local_files_only=True))
    except Exception:
        pass  # not cached (fully): try the Hub
    reason = hub_offline_reason()
    if reason:
        raise UsageError(
            f"model {spec} is not in the local Hugging Face cache and the Hub is unavailable ({reason}); "
            f"run `llmlab eval --demo` for an offline demo or pass --model /path/to/local/model"
        )
    try:
        return Path(snapshot_download(spec, allow_patterns=MODEL_FILES))
    except Exception as exc:
        raise UsageError(f"could not download model {spec} from the Hub ({_first_line(exc)}); check the name or pass a local folder") from None


def mmmlu_filename(locale: str) -> str:
    """`ZH_CN` -> `test/mmlu_ZH-CN.csv`, the file layout of openai/MMMLU."""
    return f"test/mmlu_{locale.strip().upper().replace('_', '-')}.csv"


def resolve_data(spec: str, locale: str = "ZH_CN") -> Path:
    """A local CSV: `spec` itself, `spec/test/mmlu_<locale>.csv`, or that file from the Hub dataset `spec`."""
    path = Path(spec).expanduser()
    filename = mmmlu_filename(locale)
    if path.is_file():
        return path
    if path.is_dir():
        candidate = path / filename
        if candidate.is_file():
            return candidate
        raise UsageError(f"{path} is a folder without {filename}; pass the CSV file itself or fix --locale")
    if _looks_like_path(spec):
        raise UsageError(f"data file {path} does not exist; pass a local MMMLU CSV, --data {DEFAULT_DATA}, or use --demo")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id=spec, repo_type="dataset", filename=filename, local_files_only=True))
    except Exception:
        pass
    reason = hub_offline_reason()
    if reason:
        raise UsageError(
            f"{spec} {filename} is not in the local Hugging Face cache and the Hub is unavailable ({reason}); "
            f"run `llmlab eval --demo` for an offline demo or pass --data /path/to/{Path(filename).name}"
        )
    try:
        return Path(hf_hub_download(repo_id=spec, repo_type="dataset", filename=filename))
    except Exception as exc:
        raise UsageError(f"could not download {filename} from dataset {spec} ({_first_line(exc)}); check --data and --locale") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(name: str, device: str):
    """(torch dtype, short name). `auto` is bf16 on a CUDA GPU that supports it, else fp32."""
    import torch

    table = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if name == "auto":
        name = "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if name not in table:
        raise UsageError(f"--dtype {name} is not one of auto, bf16, fp16, fp32")
    return table[name], name


def load_model(path: Path, dtype, device: str):
    """(model in eval mode on `device`, tokenizer padding on the left with a pad token).

    Always through AutoTokenizer/AutoModelForCausalLM, so a local folder and the demo model
    load exactly like a Hub checkpoint.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.evaluate.demo import quiet_transformers

    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"could not load a causal LM from {path} ({_first_line(exc)})") from None
    if tokenizer.pad_token is None:
        # Padding is masked out, so any token works; EOS is the usual choice for base models.
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer
