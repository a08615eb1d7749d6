"""The job kinds, registered in one place.

A kind is a package under `core/` whose `__init__.py` defines `KIND = Kind(...)`: its name (the
subcommand, config.json's `kind`, the run folder's suffix), its config class and its job, and how
a finished run reads in a list. The CLI (core/commands.py builds every kind's command from this
record), the runs list, resuming and the app all loop over `kinds()`; nothing else names a kind.
Adding one: write its package, then add it to PACKAGES (docs/architecture.md has the steps).
Importing a kind's package and its config module must stay light (no torch), since
`llmlab --help` reads every one.
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
    name: str                                   # "pretrain": config.json kind, run folder suffix, its command's name
    noun: str                                   # "a pretraining run", for messages
    config: str                                 # "module:Class" of its config dataclass (options, defaults, checks)
    job: str                                    # "module:Class" of its core.lifecycle.Job, built as Job(config, resume=...)
    help: str                                   # one line for `llmlab --help` and the app
    figures: tuple[str, ...] = ()               # summary fields a finished run shows, in this order
    headline: Callable[[dict], str] | None = None  # the one figure that says how a run went
    resumable: bool = False                     # `llmlab <name> --resume RUN_DIR` continues a stopped run
    results: bool = False                       # writes results.jsonl, one row per question
    demo: str | None = None                     # "module:function" building the offline demo's config from the typed options
    demo_help: str = ""
    demo_choices: tuple[str, ...] = ()          # `--demo CHOICE` (the first when given alone), passed to the demo function
    processes: bool = False                     # takes --processes / --nodes / --rendezvous (several ranks)
    runner: str | None = None                   # "module:function" when one command is several jobs (eval over adapters)
    group: str | None = None                    # its command sits in this group: `llmlab tokenizer train`
    group_help: str = ""
    command: str | None = None                  # its command's name when not `name`
    plan: str | None = None                     # "module:function" config -> core.lm.plan.Plan: `--plan` (memory, no run)


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
