"""One source for a kind's options: its config dataclass holds each default, help text and form label.

`option(...)` declares a config field with that metadata; `click_options(Config)` turns the fields
into click options (so `--help` shows the dataclass's defaults), `given(Config, kwargs)` keeps the
ones the user typed, and the app's forms read the same metadata (tui/options.py). Nothing here
imports torch.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Callable

import click

_MISSING = dataclasses.MISSING


def option(default: Any = _MISSING, help: str = "", *, choices: tuple[str, ...] = (), label: str | None = None,
           placeholder: str = "", flag: str | None = None, cli: bool = True, parse: Callable[[str], Any] | None = None,
           or_word: str | None = None, metavar: str | None = None, factory: Callable[[], Any] | None = None,
           shown: str | None = None, cli_choices: bool = True, multiple: bool = False, positional: bool = False):
    """A config field with its option metadata.

    choices: the allowed values (a click Choice, a select in the app). label/placeholder: the app's
    form. flag: the option's name when it is not --field-name. cli=False: not a command-line option.
    parse: turns the typed text into the value (its errors become click's bad-parameter message);
    or_word: a word accepted besides a number (batch size "auto"). shown: the default as --help shows it.
    cli_choices=False: the choices are the form's select only; the config's validate() checks the value.
    multiple: the option may be given several times (a list field, e.g. --adapter A --adapter B).
    positional: a command-line argument instead of an option (with multiple: one or more, e.g. `vote RUN RUN`).
    """
    metadata = {"help": help, "choices": tuple(choices), "label": label, "placeholder": placeholder, "flag": flag,
                "cli": cli, "parse": parse, "or_word": or_word, "metavar": metavar, "shown": shown,
                "cli_choices": cli_choices, "multiple": multiple,
                "positional": positional}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def fields_of(config_cls) -> list[dataclasses.Field]:
    return list(dataclasses.fields(config_cls))


def field_type(config_cls, name: str):
    """The field's type with Optional stripped: int, float, str, bool, or a Union for 'int | str'."""
    hint = typing.get_type_hints(config_cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 else hint


def flag_name(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def default_of(f: dataclasses.Field):
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:
        return f.default_factory()
    return None


def _shown_default(f: dataclasses.Field, kind) -> str | None:
    if f.metadata.get("shown"):
        return f.metadata["shown"]
    value = default_of(f)
    if value in ([], ()):
        return None
    if kind is bool:
        return (flag_name(f)[2:] if value else "no-" + flag_name(f)[2:]) if value is not None else None
    return None if value is None else str(value)


def click_options(config_cls, skip: tuple[str, ...] = ()):
    """A decorator adding one click option per CLI field of `config_cls` (default None = not given)."""

    def decorate(command):
        for f in reversed(fields_of(config_cls)):
            if not f.metadata.get("cli", False) or f.name in skip:
                continue
            command = _option_for(config_cls, f)(command)
        return command

    return decorate


def _option_for(config_cls, f: dataclasses.Field):
    meta = f.metadata
    if meta.get("positional"):
        return click.argument(f.name, nargs=-1 if meta.get("multiple") else 1, required=True,
                              metavar=meta.get("metavar") or f.name.upper())
    kind = field_type(config_cls, f.name)
    name = flag_name(f)
    shown = _shown_default(f, kind)
    help_text = meta.get("help", "") + (f"  [default: {shown}]" if shown else "")
    common: dict[str, Any] = {"default": None, "help": help_text, "metavar": meta.get("metavar")}
    if kind is bool:
        return click.option(f"{name}/--no-{name[2:]}", f.name, **{k: v for k, v in common.items() if k != "metavar"})
    if meta.get("multiple"):
        return click.option(name, f.name, type=str, multiple=True, help=help_text, metavar=meta.get("metavar"))
    if meta.get("parse"):
        parse = meta["parse"]

        def callback(ctx, param, value, parse=parse):
            if value is None:
                return None
            try:
                return parse(value)
            except ValueError as exc:
                raise click.BadParameter(str(exc)) from None

        return click.option(name, f.name, type=str, callback=callback, **common)
    if meta.get("choices") and meta.get("cli_choices", True):
        return click.option(name, f.name, type=click.Choice(meta["choices"]), **common)
    click_type = kind if kind in (int, float, str) else str
    return click.option(name, f.name, type=click_type, **common)


def given(config_cls, values: dict) -> dict:
    """The config fields among click's `values` that the user set (click passes None for the rest)."""
    names = {f.name for f in fields_of(config_cls)}
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()
            if k in names and v is not None and v != ()}


def check_template(text: str, fields: tuple[str, ...], flag: str = "--prompt") -> None:
    """Refuse, before any folder exists, a prompt template with a field it is not given, a positional `{}`/`{0}`
    or a stray brace: filling it would fail half way through a run."""
    import string

    from core.errors import UsageError

    allowed = ", ".join("{" + f + "}" for f in fields)
    try:
        used = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:  # a lone { or }
        raise UsageError(f"{flag} is not a valid template ({exc}); write a literal brace twice ({{{{ or }}}}) and "
                         f"fields as {allowed}") from None
    for name in used:
        base = name.split(".", 1)[0].split("[", 1)[0]
        if base not in fields:
            shown = "{" + name + "}" if name else "{}"
            raise UsageError(f"{flag} uses {shown}, which this command does not fill; it may use {allowed}")


def refuse_with_demo(overrides: dict, names: tuple[str, ...] = ("model",)) -> None:
    """--demo brings its own model (and eval its own data): the same option given too would be silently ignored."""
    from core.errors import UsageError

    if overrides.get("demo") is False:  # the demo's settings as a preset for a run of one's own model (tests do)
        return
    for name in names:
        if name in overrides:
            raise UsageError(f"--demo brings its own model; drop --{name.replace('_', '-')}, or drop --demo")


def check_finite(config) -> None:
    """Refuse nan and inf in any number option, for every kind at once: `--lr inf` passes `lr > 0` and would train
    on infinities, `--tolerance nan` would judge every answer wrong."""
    import math

    from core.errors import UsageError

    for f in fields_of(type(config)):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{flag_name(f)} must be a finite number (got {value})")


def config_from_record(config_cls, record: dict, out: str | None = None):
    """A config rebuilt from a run's config.json (a resume): its own fields only, `out` set to the run folder."""
    names = {f.name for f in fields_of(config_cls)}
    config = config_cls(**{k: v for k, v in record.items() if k in names})
    if out is not None:
        config.out = out
    return config


def positive_int_or(word: str):
    """A `parse` for 'a whole number >= 1, or `word`' (e.g. --batch-size auto)."""

    def parse(text):
        if text == word:
            return word
        try:
            number = int(text)
        except (TypeError, ValueError):
            raise ValueError(f"{text!r} is not a number or '{word}'") from None
        if number < 1:
            raise ValueError("must be at least 1")
        return number

    return parse
