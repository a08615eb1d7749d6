"""Each job kind's part of the app, registered in one place: how its events fold, and the one view that shows it.

A kind's module defines `progress_class` (a JobProgress subclass: what its events add up to) and
`view_class` (a widget with `show(progress)` and `reset()`, or None), used by its live tab and by
the run screen alike. A kind with no module of its own gets the answers module when it writes
results (core.kinds' `results`), else the base one (figures and config only), so a new kind shows
in the app before it has a line here.
"""

from __future__ import annotations

from importlib import import_module

MODULES = {"pretrain": "tui.kinds.pretrain", "finetune": "tui.kinds.finetune", "eval": "tui.kinds.eval"}


def module_of(kind: str | None):
    from core.kinds import get

    name = MODULES.get(kind or "")
    if name is None:
        spec = get(kind)
        name = "tui.kinds.answers" if spec is not None and spec.results else "tui.kinds.base"
    return import_module(name)


def progress_class(kind: str | None):
    return module_of(kind).progress_class


def view_class(kind: str | None):
    return module_of(kind).view_class


def load_progress(run):
    """A run read from disk (a core.runlog RunFolder, or anything with its `path`) folded by its kind's progress class."""
    from core.runlog import RunFolder

    folder = run if isinstance(run, RunFolder) else RunFolder(run.path)
    return progress_class(getattr(run, "kind", None) or folder.kind()).load(folder)
