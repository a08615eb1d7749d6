"""`llmlab eval --adapter A --adapter B ...`: one eval run per adapter over one loaded base model, then their vote.

The base model is loaded once with every adapter under its own name (peft's multi-adapter
switching); each run switches to its adapter. Every run folder follows the run contract; the vote
is a `vote` run over them. With --out DIR, the runs go to DIR/adapter-<n>-<name>/ and DIR/vote/.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from core.errors import UsageError
from core.eval.config import EvalConfig


class SharedModel:
    """Loads the base model and its adapters on first use, then hands the same object to every run."""

    def __init__(self, choice, dtype: str, threads: int | None) -> None:
        self.choice, self.dtype, self.threads = choice, dtype, threads
        self.loaded = None

    def get(self):
        from core.lm.choice import load_for_generation

        if self.loaded is None:
            self.loaded = load_for_generation(self.choice, self.dtype, self.threads)
        else:
            self.loaded.seconds = 0.0  # later runs pay no load
        return self.loaded


def _sub_out(parent: Path | None, name: str) -> str | None:
    return None if parent is None else str(parent / name)


def run_eval_command(config: EvalConfig, resume: bool = False, progress=None, log=None, on_step=None) -> dict:
    """`llmlab eval`: one run, or with several --adapter one run per adapter over one loaded base and their vote
    (whose summary is returned)."""
    from core.distributed import world
    from core.eval.run import EvalJob
    from core.lifecycle import run_job

    if len(config.adapter) <= 1:
        return run_job(EvalJob(config, resume=resume), progress=progress, log=log, on_step=on_step)
    if world().distributed:
        raise UsageError("several adapters are evaluated over one loaded base in one process; drop --processes, "
                         "or evaluate each adapter in a run of its own")
    say = log or (lambda line: None)
    summaries, vote = run_eval_adapters(config, progress=progress, log=log)
    for s in summaries:
        say(f"{s['adapter']}: accuracy {s['accuracy']:.1%} ({s['correct']}/{s['n']}) -> {s['run_dir']}")
    say(f"vote of {len(summaries)}: accuracy {vote['accuracy']:.1%} ({vote['correct']}/{vote['n']}) -> {vote['run_dir']}")
    return vote


def run_eval_adapters(config: EvalConfig, progress=None, log=print) -> tuple[list[dict], dict]:
    """(one summary per adapter, the vote's summary). Every adapter is checked before any folder is made."""
    from core.eval.run import EvalJob
    from core.lifecycle import run_job
    from core.lm.choice import choose_model
    from core.qa.vote import run_vote
    from core.runs import claim_run_dir

    config.validate()
    choice = choose_model(config.model, config.adapter, config.demo)
    parent = None
    if config.out:
        parent = claim_run_dir("eval", config.out)
    shared = SharedModel(choice, config.dtype, config.threads or (1 if config.demo else None))
    summaries = []
    for i, adapter in enumerate(choice.adapters):
        name = f"adapter-{i + 1}-{adapter.parent.name if adapter.name == 'adapter' else adapter.name}"
        sub = replace(config, adapter=[str(adapter)], out=_sub_out(parent, name))
        summary = run_job(EvalJob(sub, shared=shared, adapter_index=i), progress=progress)
        summaries.append(summary)
        if summary["status"] != "completed":
            raise UsageError(f"the eval run with {adapter} ended {summary['status']}; no vote without every answer")
    vote = run_vote([s["run_dir"] for s in summaries], out=_sub_out(parent, "vote"), log=log)
    return summaries, vote
