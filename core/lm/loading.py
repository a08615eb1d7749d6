"""Where the model and the data come from, and loading the model the way a real run does.

Hub names are resolved to local folders first (the local Hugging Face cache), then, only if
the Hub answers a quick connection probe, downloaded. Offline, the default command therefore
fails within seconds with one line instead of hanging in hub retries.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import UsageError
from core.hub import fetch

DEFAULT_DATA = "openai/MMMLU"
# Files a causal LM needs; skips other weight formats (.bin, .gguf, onnx) a repo may also carry.
MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.py"]


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.count("/") != 1 or spec.endswith(".csv") or os.sep != "/" and os.sep in spec


def resolve_model(spec: str) -> Path:
    """A local folder holding the model: `spec` itself, the model/ an llmlab run saved, or the Hub repo `spec` from
    the cache or a download."""
    path = Path(spec).expanduser()
    if path.is_file():
        raise UsageError(f"model {path} is a file; pass the folder that holds the model (its config.json and weights)")
    if path.is_dir():
        run = _run_model(path)
        if run is not None:
            return run
        if not (path / "config.json").is_file():
            raise UsageError(f"model folder {path} has no config.json; point --model at a saved model folder or a Hub id")
        return path
    if _looks_like_path(spec):
        raise UsageError(f"model folder {path} does not exist; pass an existing folder, a Hub id like "
                         f"Qwen/Qwen2.5-0.5B")
    return fetch(spec, allow_patterns=MODEL_FILES, what=f"model {spec}",
                 offline_hint="run `llmlab eval --demo` for an offline demo or pass --model /path/to/local/model")


def _run_model(path: Path) -> Path | None:
    """The model/ of an llmlab run folder (a pretraining run saves one); None for a folder that is not a run."""
    from core.kinds import get as get_kind
    from core.runs import CONFIG, read_json

    run = get_kind((read_json(path / CONFIG) or {}).get("kind"))
    if run is None:
        return None
    model = path / "model"
    if (model / "config.json").is_file() and any((model / name).is_file() for name in WEIGHT_FILES):
        return model
    if model.is_dir():
        raise UsageError(f"{path} is {run.noun} folder whose model/ has no weights yet; pass a finished run (or resume "
                         f"this one first)")
    raise UsageError(f"{path} is {run.noun} folder without a model of its own (no model/); pass a model folder, a "
                     f"pretraining run folder or a Hub id")


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
    return fetch(spec, repo_type="dataset", filename=filename, what=f"{spec} {filename}",
                 offline_hint=f"run `llmlab eval --demo` for an offline demo or pass --data /path/to/{Path(filename).name}")


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


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def check_model_folder(path: Path) -> None:
    """Refuse, in one line, a model folder that could not load: no weights, or damaged safetensors.

    Cheap (file names and safetensors headers only), so it runs before the run folder is made.
    """
    path = Path(path)
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise UsageError(f"model folder {path} has no weights ({' or '.join(WEIGHT_FILES[::2])}); "
                         f"point --model at a folder written by save_pretrained")
    from safetensors import safe_open

    for file in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(file), "pt"):
                pass
        except Exception as exc:  # SafetensorError: a torn download, a half-written save, not safetensors at all
            raise UsageError(f"{file} is damaged ({_first_line(exc)}); save or download the model again") from None


def model_context(path: Path) -> int | None:
    """The model's context length in tokens from its config.json, or None when it does not say."""
    from core.runs import read_json

    config = read_json(Path(path) / "config.json") or {}
    for section in (config, config.get("text_config") or {}):
        for key in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
            value = section.get(key)
            if isinstance(value, int) and value > 0:
                return value
    return None


def load_tokenizer(path: Path):
    """The model's tokenizer, padding on the left with a pad token; one line when it is missing or broken."""
    from transformers import AutoTokenizer

    from core.lm.demo import quiet_transformers

    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
    except Exception as exc:  # tokenizers raises its own types for a broken tokenizer.json
        raise UsageError(f"could not load the tokenizer in {path} ({_first_line(exc)})") from None
    if len(tokenizer) <= 1:
        # transformers builds an empty tokenizer from config.json alone instead of failing.
        raise UsageError(f"model folder {path} has no tokenizer files (tokenizer.json, or vocab.json and merges.txt); "
                         f"save the tokenizer next to the model")
    if tokenizer.pad_token is None:
        # Padding is masked out, so any token works; EOS is the usual choice for base models.
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.convert_ids_to_tokens(0)
    return tokenizer


def load_model(path: Path, dtype, device: str, tokenizer=None, quantize: str = "none"):
    """(model in eval mode on `device`, tokenizer padding on the left with a pad token).

    Always through AutoTokenizer/AutoModelForCausalLM, so a local folder and the demo model
    load exactly like a Hub checkpoint. Pass `tokenizer` when it is already loaded. `quantize`
    (nf4, int8) loads the weights through bitsandbytes, and a folder saved quantized (GPTQ, AWQ)
    loads through transformers' own integration; both are placed on `device` as they load, since
    a quantized model cannot be moved afterwards (core/lm/quantize.py).
    """
    from transformers import AutoModelForCausalLM

    from core.lm.demo import quiet_transformers
    from core.lm.quantize import bnb_config, saved_quantization

    if tokenizer is None:
        tokenizer = load_tokenizer(path)
    quantized = quantize != "none" or saved_quantization(path) is not None
    extra = {}
    if quantized:
        import torch

        place = torch.device("cuda", torch.cuda.current_device()) if device == "cuda" else torch.device(device)
        extra = {"device_map": {"": place}}
        if quantize != "none":
            extra["quantization_config"] = bnb_config(quantize, device)
    try:
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **extra)
    except Exception as exc:  # OSError, ValueError, SafetensorError ...: the folder cannot be loaded as a causal LM
        raise UsageError(f"could not load a causal LM from {path} ({_first_line(exc)})") from None
    if not quantized:
        model = model.to(device)
    return model.eval(), tokenizer
