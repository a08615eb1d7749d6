"""A job tab's form: fields built from the kind's config dataclass, and the command line they make.

Labels, placeholders, choices and defaults come from the config's field metadata
(core/options.py), so the form, `--help` and the engine cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from core.options import default_of, field_type, flag_name


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


def form_fields(config_cls, names: tuple[str, ...]) -> tuple[Field, ...]:
    """The form fields for these config fields, in this order. `config_cls` may be a tuple of classes (a kind's config
    and core.launch.LaunchOptions, say): each name is taken from the first class that has it."""
    classes = config_cls if isinstance(config_cls, tuple) else (config_cls,)
    by_name = {}
    for cls in reversed(classes):
        by_name.update({f.name: (cls, f) for f in dataclasses.fields(cls)})
    out = []
    for name in names:
        owner, f = by_name[name]
        meta, kind, default = f.metadata, field_type(owner, name), default_of(f)
        label = meta.get("label") or name.replace("_", " ").capitalize()
        option = flag_name(f)[2:]
        if kind is bool:
            out.append(Field(option, label, bool(default)))
            continue
        out.append(Field(option, label, "" if default is None else str(default), choices=tuple(meta.get("choices") or ()),
                         integer=kind is int and not meta.get("choices"), integer_or=meta.get("or_word"),
                         placeholder=meta.get("placeholder") or ""))
    return tuple(out)


def defaults(fields: tuple[Field, ...]) -> dict[str, str | bool]:
    return {f.name: f.default for f in fields}


def preset(fields: tuple[Field, ...], demo: dict[str, str | bool]) -> dict[str, str | bool]:
    return {**defaults(fields), **demo}


class FormError(ValueError):
    """A form value that cannot become a valid option; names the field."""

    def __init__(self, field: Field, message: str):
        super().__init__(f"{field.label}: {message}")
        self.field = field


def validate(fields: tuple[Field, ...], values: dict[str, str | bool], required: bool = True) -> None:
    """FormError for the first value that cannot become its option; `required=False` lets empty text fields pass
    (the memory plan needs no --data)."""
    by_name = {f.name: f for f in fields}
    if values.get("fsdp") is True and "processes" in by_name and str(values.get("processes", "")).strip() in ("", "1"):
        raise FormError(by_name["fsdp"], "shards the model over several processes: set Processes to 2 or more")
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
        elif not text and f.name != "out" and required:
            raise FormError(f, "must not be empty")


@dataclass(frozen=True)
class Preset:
    """A Demo preset of a form: what it shows in the fields, and the command-line words that select it."""

    label: str
    values: dict
    args: tuple[str, ...] = ("--demo",)


def command_options(
    fields: tuple[Field, ...], values: dict[str, str | bool], demo: dict[str, str | bool] | None = None,
    demo_args: tuple[str, ...] = ("--demo",), required: bool = True,
) -> tuple[list[str], str | None]:
    """(options for the job's command line, the output folder or None).

    Without a preset every field is passed explicitly. With a Demo preset the line starts with its
    `demo_args` (`--demo`, or `--demo zh`) and carries only the fields the user changed from the preset.
    """
    validate(fields, values, required)
    options: list[str] = list(demo_args) if demo is not None else []
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


def plan_line(kind: str, args: list[str]) -> str:
    """The kind's memory plan (core/lm/plan.py) for a form's command line, as one line; "" for a kind without one.

    Reads the model's config.json (or a Hub config), never weights; run it off the UI thread.
    """
    from core.commands import build_command, make_config
    from core.kinds import get, load
    from core.options import given

    registered = get(kind)
    if registered is None or not registered.plan:
        return ""
    try:
        context = build_command(registered).make_context(registered.name, list(args))
        params = dict(context.params)
        demo = params.pop("demo", None)
        config = make_config(registered, given(load(registered.config), params), demo)
        return load(registered.plan)(config).line()
    except Exception as exc:  # a field the plan cannot use yet (no model, a typo): say so on the line, never raise
        text = str(getattr(exc, "message", None) or exc).strip().splitlines()
        return f"plan: {text[0][:90] if text else type(exc).__name__}"
