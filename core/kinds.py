"""The job kinds, registered in one place.

A kind is a package under `core/` whose `__init__.py` defines `KIND = Kind(...)`: its name (the
subcommand, config.json's `kind`, the run folder's suffix), where its click command lives, and
how a finished run reads in a list. The CLI, the runs list, resuming and the app all loop over
`kinds()`; nothing else names a kind. Adding one: write its package, then add it to PACKAGES
(docs/architecture.md has the steps). Importing a kind's package must stay light (no torch),
since `llmlab --help` reads every one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import import_module
from typing import Callable

# The one list of kinds, in the order the CLI and the app show them.
PACKAGES = (
    "core.tokenizer",
    "core.pretrain",
    "core.finetune",
    "core.eval",
    "core.squad",
    "core.math",
    "core.vote",
)


@dataclass(frozen=True)
class Kind:
    name: str                                   # "pretrain": subcommand, config.json kind, run folder suffix
    noun: str                                   # "a pretraining run", for messages
    command: str                                # "module:attribute" of its click command (imported lazily)
    help: str                                   # one line for `llmlab --help` and the app
    figures: tuple[str, ...] = ()               # summary fields a finished run shows, in this order
    headline: Callable[[dict], str] | None = None  # the one figure that says how a run went
    resumable: bool = False                     # `llmlab <name> --resume RUN_DIR` continues a stopped run
    results: bool = False                       # writes results.jsonl, one row per question


@lru_cache(maxsize=1)
def kinds() -> dict[str, Kind]:
    """Every registered kind by name, in PACKAGES order."""
    found = {}
    for package in PACKAGES:
        kind = import_module(package).KIND
        found[kind.name] = kind
    return found


def get(name: str | None) -> Kind | None:
    return kinds().get(name) if name else None


def load(path: str):
    """The object a "module:attribute" path names."""
    module, _, attr = path.partition(":")
    return getattr(import_module(module), attr)
