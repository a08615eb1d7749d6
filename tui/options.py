"""The Pretrain and Evaluate forms: their fields, seed defaults, Demo presets, and the command line they make."""

from __future__ import annotations

from dataclasses import dataclass

from core.pretrain.config import PretrainConfig, demo_config

_SEED = PretrainConfig()
_DEMO = demo_config()


@dataclass(frozen=True)
class Field:
    """One form field, which becomes one `--option` of the job's command line."""

    name: str  # the option without dashes, e.g. "max-new-tokens"
    label: str
    default: str | bool
    choices: tuple[str, ...] = ()  # shown as a select when given
    integer: bool = False  # must be a whole number >= 1
    integer_or: str | None = None  # or exactly this word (e.g. "auto")
    placeholder: str = ""

    @property
    def flag(self) -> bool:
        return isinstance(self.default, bool)


PRETRAIN_FIELDS = (
    Field("data", "Data", _SEED.data, placeholder="hub id or local .txt/.jsonl/.csv/.parquet"),
    Field("rows", "Rows", str(_SEED.rows), integer=True),
    Field("epochs", "Epochs", str(_SEED.epochs), integer=True),
    Field("model-size", "Model size", _SEED.model_size, choices=("default", "tiny")),
    Field("tokenizer", "Tokenizer", _SEED.tokenizer),
    Field("batch-size", "Batch size", str(_SEED.batch_size), integer=True),
    Field("compile", "Compile", False),
    Field("out", "Output", "", placeholder="new folder under the runs folder"),
)

# What `llmlab pretrain --demo` runs (bundled corpus and tokenizer, tiny model); shown so the
# form never hides what will happen. Only fields changed after choosing the preset are passed.
# The numbers come from the engine's own demo config, so the form cannot drift from it.
PRETRAIN_DEMO = {
    "data": "bundled demo corpus",
    "rows": str(_DEMO.rows),
    "epochs": str(_DEMO.epochs),
    "model-size": _DEMO.model_size,
    "tokenizer": "bundled gpt2",
    "batch-size": str(_DEMO.batch_size),
    "compile": _DEMO.compile,
}

EVAL_FIELDS = (
    Field("model", "Model", "Qwen/Qwen2.5-0.5B", placeholder="hub id or local folder"),
    Field("data", "Data", "openai/MMMLU"),
    Field("locale", "Locale", "ZH_CN"),
    Field("subject", "Subject", "moral_scenarios"),
    Field("limit", "Limit", "100", integer=True),
    Field("max-new-tokens", "Max new tokens", "512", integer=True),
    Field("batch-size", "Batch size", "auto", integer_or="auto"),
    Field("mode", "Mode", "generate", choices=("generate", "logprob")),
    Field("dtype", "Dtype", "auto", choices=("auto", "bf16", "fp16", "fp32")),
)

EVAL_DEMO = {
    "model": "bundled demo model",
    "data": "bundled demo questions",
}


def defaults(fields: tuple[Field, ...]) -> dict[str, str | bool]:
    return {f.name: f.default for f in fields}


def preset(fields: tuple[Field, ...], demo: dict[str, str | bool]) -> dict[str, str | bool]:
    return {**defaults(fields), **demo}


class FormError(ValueError):
    """A form value that cannot become a valid option; names the field."""

    def __init__(self, field: Field, message: str):
        super().__init__(f"{field.label}: {message}")
        self.field = field


def validate(fields: tuple[Field, ...], values: dict[str, str | bool]) -> None:
    for f in fields:
        value = values.get(f.name, f.default)
        if f.flag:
            continue
        text = str(value).strip()
        if f.integer or f.integer_or:
            if f.integer_or and text == f.integer_or:
                continue
            if not text.isdigit() or int(text) < 1:
                also = f" or '{f.integer_or}'" if f.integer_or else ""
                raise FormError(f, f"must be a whole number of at least 1{also}")
        elif f.choices and text not in f.choices:
            raise FormError(f, f"choose one of {', '.join(f.choices)}")
        elif not text and f.name != "out":
            raise FormError(f, "must not be empty")


def command_options(
    fields: tuple[Field, ...], values: dict[str, str | bool], demo: dict[str, str | bool] | None = None
) -> tuple[list[str], str | None]:
    """(options for the job's command line, the output folder or None).

    Without a preset every field is passed explicitly. With the Demo preset the line starts
    with `--demo` and carries only the fields the user changed from the preset.
    """
    validate(fields, values)
    options: list[str] = ["--demo"] if demo is not None else []
    base = preset(fields, demo) if demo is not None else None
    out = None
    for f in fields:
        value = values.get(f.name, f.default)
        if f.name == "out":
            out = str(value).strip() or None
            continue
        if base is not None and value == base[f.name]:
            continue
        if f.flag:
            options.append(f"--{f.name}" if value else f"--no-{f.name}")
        else:
            options += [f"--{f.name}", str(value).strip()]
    return options, out
