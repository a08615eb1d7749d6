"""Every kind's command, built from its registration (core/kinds.py): options, --demo, --resume, processes.

A kind names its config class and its job; this module turns that into `llmlab <kind>`: one click
option per config field (core/options.py), `--demo` when the kind has a demo, `--resume RUN_DIR`
when its runs can be continued, and `--processes/--nodes/--rendezvous` when it runs on several.
Running one is the same for every kind: the config (typed, a demo's, or the stopped run's own),
its checks, the shared lifecycle under a terminal progress display, and one exit code:
0 completed, 128 + the signal for a stop, 1 for a failed run, 2 for bad input (core/cli.py).
"""

from __future__ import annotations

import signal
from pathlib import Path

import click

from core.errors import UsageError
from core.kinds import Kind, load
from core.launch import distributed_options
from core.options import check_finite, click_options, config_from_record, given


def exit_code(summary: dict) -> int:
    """The one mapping from a run's status to the process's exit code."""
    status = summary.get("status")
    if status == "completed":
        return 0
    if status == "stopped":
        return 128 + int(summary.get("stop_signal") or signal.SIGINT)
    return 1


def resume_config(kind: Kind, run_dir: str | Path):
    """The config of a stopped `kind` run, to continue it in its own folder: the one --resume path.

    The folder must be a run of this kind that no live process is writing; its config.json gives
    every option back. What else a resume needs (a checkpoint, answers keyed by settings) the job
    checks in its prepare(), before anything is written.
    """
    from core.runlog.reader import load_run_config

    path, record = load_run_config(run_dir, kind.name)
    return config_from_record(load(kind.config), record, str(path))


def make_config(kind: Kind, chosen: dict, demo):
    """The config a command line asks for: the typed options, on top of the kind's demo when --demo is given."""
    if demo:
        build = load(kind.demo)
        return build(demo, **chosen) if kind.demo_choices else build(**chosen)
    return load(kind.config)(**chosen)


def show_plan(kind: Kind, config, as_json: bool = False) -> int:
    """`--plan`: the kind's memory plan from the model's config.json, printed (or as JSON); no run folder, exit 0."""
    import json

    plan = load(kind.plan)(config)
    click.echo(json.dumps(plan.to_dict(), indent=2) if as_json else plan.text())
    return 0


def checked_config(kind: Kind, demo=None, resume_dir: str | None = None, options: dict | None = None,
                   validate: bool = True):
    """The config a command line asks for, checked (before torch is imported, so a typo costs nothing)."""
    chosen = given(load(kind.config), options or {})
    if resume_dir:
        if chosen or demo:
            names = ["--" + k.replace("_", "-") for k in chosen] + (["--demo"] if demo else [])
            raise click.UsageError(f"--resume reuses the run's own options; drop {', '.join(names)}")
        config = resume_config(kind, resume_dir)
    else:
        config = make_config(kind, chosen, demo)
    check_finite(config)
    if validate:
        config.validate()
    return config


def run_kind(kind: Kind, demo=None, resume_dir: str | None = None, options: dict | None = None, plan: bool = False,
             as_json: bool = False) -> int:
    """Run one `llmlab <kind>` command line to its end and return the exit code (with `plan`: only its memory plan)."""
    from core.distributed import world

    if as_json and not plan:
        raise click.UsageError("--json prints the --plan as JSON; add --plan")
    # the plan needs none of the run's other inputs (its data), so the config is not validated for it
    config = checked_config(kind, demo, resume_dir, options, validate=not plan)
    if plan:
        return show_plan(kind, config, as_json)

    from core.display import TerminalDisplay

    main = world().main  # with several processes only rank 0 shows progress and prints
    display = TerminalDisplay(kind.name) if main else None
    try:
        summary = run_runner(kind, config, resume=bool(resume_dir), display=display)
    finally:
        if display is not None:
            display.close()
    if not main:  # rank 0 reports the run; a rank that stopped with it has nothing to add
        return 1 if summary.get("status") == "failed" else 0
    if summary.get("status") == "stopped" and kind.resumable and summary.get("run_dir"):
        n, total = summary.get("n"), summary.get("total")
        so_far = (f" after {n} of {total} questions; results so far are in {summary['run_dir']}"
                  if isinstance(n, int) and isinstance(total, int) else "")
        click.echo(f"llmlab: stopped{so_far}; continue with 'llmlab {kind.name} --resume {summary['run_dir']}'", err=True)
    elif summary.get("status") == "failed":
        click.echo(f"llmlab: error: {summary.get('error')}", err=True)
    return exit_code(summary)


def run_runner(kind: Kind, config, resume: bool = False, display=None) -> dict:
    """The kind's run: its own runner when one run is several jobs (eval over several adapters), else its job
    through the shared lifecycle. Returns the summary."""
    from core.lifecycle import run_job

    hooks = display.hooks() if display is not None else {"log": None}
    if kind.runner:
        return load(kind.runner)(config, resume=resume, **hooks)
    return run_job(load(kind.job)(config, resume=resume), **hooks)


def build_command(kind: Kind) -> click.Command:
    """`llmlab <kind>` (or `llmlab <group> <command>`) from the kind's registration."""
    config_cls = load(kind.config)

    def callback(demo=None, resume_dir=None, plan=False, as_json=False, **options) -> int:
        return run_kind(kind, demo, resume_dir, options, plan=plan, as_json=as_json)

    # Applied innermost first, so --help lists --demo, the config's options, --resume, --plan, then the launch options.
    def precheck(demo=None, resume_dir=None, plan=False, as_json=False, **options) -> None:  # before the ranks start
        checked_config(kind, demo, resume_dir, options)

    command = distributed_options(callback, precheck) if kind.processes else callback
    if kind.plan:
        command = click.option("--json", "as_json", is_flag=True, default=False, help="With --plan: print it as JSON.")(command)
        command = click.option("--plan", is_flag=True, default=False,
                               help="Print the memory this run would take (weights, gradients, optimizer, activations, "
                                    "KV cache) from the model's config.json alone, against the free GPU memory; "
                                    "nothing is loaded or written.")(command)
    if kind.resumable:
        command = click.option("--resume", "resume_dir", default=None, metavar="RUN_DIR",
                               help=f"Continue a stopped run from where it stopped (its own options are reused"
                                    f"{'; --processes may differ' if kind.processes else ''}).")(command)
    command = click_options(config_cls)(command)
    if kind.demo:
        if kind.demo_choices:
            command = click.option("--demo", type=click.Choice(kind.demo_choices), is_flag=False,
                                   flag_value=kind.demo_choices[0], default=None, help=kind.demo_help)(command)
        else:
            command = click.option("--demo", is_flag=True, default=None, help=kind.demo_help)(command)
    return click.command(kind.command or kind.name, help=kind.help,
                         context_settings={"help_option_names": ["-h", "--help"]})(command)


def add_kind_commands(group: click.Group) -> None:
    """One command per registered kind under `group` (the llmlab CLI); a kind with a `group` goes under it."""
    from core.kinds import kinds

    for kind in kinds().values():
        parent = group
        if kind.group:
            parent = group.commands.get(kind.group)
            if parent is None:
                parent = click.Group(kind.group, help=kind.group_help or kind.help)
                group.add_command(parent)
        name = kind.command or kind.name
        if name not in parent.commands:
            parent.add_command(build_command(kind), name)


__all__ = ["exit_code", "resume_config", "make_config", "checked_config", "run_kind", "run_runner", "build_command",
           "add_kind_commands", "UsageError"]
