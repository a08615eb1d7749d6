"""`--processes N` / `--nodes M --rendezvous HOST:PORT`: start the ranks with torch's elastic launcher.

This is what `torchrun --nproc-per-node N` does, called as a library (torch.distributed.launcher),
so `llmlab pretrain --processes 2` needs no second tool; `torchrun ... -m core.cli pretrain ...`
works as well, and so does `accelerate launch`. Each rank runs the same llmlab command without
the launch options; core/distributed.py tells it who it is.

The launcher itself trains nothing. It checks the request against the machine, starts the ranks,
and turns their outcome into one exit code. If a rank dies and rank 0 could not write the run's
end, the launcher writes it, so the run folder says `failed` and names the rank.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click

from core.errors import UsageError
from core.options import click_options, flag_name, option

FSDP_NEEDS_RANKS = ("--fsdp shards the model over several processes, and this is one; add --processes N (N of 2 or "
                    "more: one per GPU) or drop --fsdp")


@dataclass
class LaunchOptions:
    """The launch options of every kind that runs on several processes, declared once: the click options and the
    app's forms (tui.options.form_fields) are built from these fields."""

    processes: int = option(1, "Data-parallel processes on this machine: one per GPU, or CPU processes (gloo) without one.",
                            label="Processes")
    nodes: int = option(1, "Machines in the job (with --rendezvous).")
    rendezvous: str | None = option(None, "Where the machines meet (torch's c10d rendezvous); every machine runs the same "
                                    "command.", metavar="HOST:PORT")
    rendezvous_timeout: int = option(60, "How long to wait for the other machines.", metavar="SECONDS")


LAUNCH_OPTIONS = tuple(flag_name(f) for f in dataclasses.fields(LaunchOptions))
RUN_DIR_FILE = "LLMLAB_RUN_DIR_FILE"  # rank 0 writes its run folder's path here, for the launcher
_argv: list[str] = []


def remember_argv(argv: list[str]) -> None:
    """The command line this process was started with (core.cli.main records it), to start the ranks with."""
    _argv[:] = list(argv)


def worker_argv(argv: list[str]) -> list[str]:
    """`argv` without the launch options: what each rank runs."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in LAUNCH_OPTIONS:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def distributed_options(command, precheck=None):
    """Add the launch options to a click command; with more than one process the command relaunches itself.

    `precheck(**kwargs)` checks the command's own options before any rank starts, so bad input costs no
    process start-up. A command given `--fsdp` on one process is refused here: it is the launch that is wrong.
    """

    @click_options(LaunchOptions)
    @functools.wraps(command)
    def wrapper(processes, nodes, rendezvous, rendezvous_timeout, **kwargs):
        from core.distributed import world

        defaults = LaunchOptions()
        processes = defaults.processes if processes is None else processes
        nodes = defaults.nodes if nodes is None else nodes
        timeout = defaults.rendezvous_timeout if rendezvous_timeout is None else rendezvous_timeout
        if kwargs.get("plan"):  # a memory plan sizes the run from its config alone: no ranks to start
            return command(**kwargs)
        size = world().size if world().distributed else processes * nodes
        if kwargs.get("fsdp") and size == 1:  # (a resumed --fsdp run may go on in one process: it does not say --fsdp)
            raise UsageError(FSDP_NEEDS_RANKS)
        if (processes != 1 or nodes != 1) and not world().distributed:
            if precheck is not None:
                precheck(**kwargs)
            return launch(worker_argv(_argv), processes, nodes, rendezvous, timeout)
        return command(**kwargs)

    return wrapper


def check_request(processes: int, nodes: int, rendezvous: str | None) -> str:
    """What the ranks will compute on ("GPU"/"CPU"); UsageError when the machine cannot take the request."""
    if processes < 1 or nodes < 1:
        raise UsageError("--processes and --nodes must be at least 1")
    if nodes > 1 and not rendezvous:
        raise UsageError(f"--nodes {nodes} needs --rendezvous HOST:PORT, the address of the first machine, "
                         f"given the same on every machine")
    if rendezvous:
        host, _, port = rendezvous.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"--rendezvous {rendezvous} is not HOST:PORT (for example 10.0.0.1:29500)")
    import torch

    if torch.cuda.is_available():
        gpus = torch.cuda.device_count()
        if processes > gpus:
            raise UsageError(f"--processes {processes} but this machine has {gpus} GPU{'s' if gpus != 1 else ''}; "
                             f"use at most {gpus} (one process per GPU)")
        return "GPU"
    cores = os.cpu_count() or 1
    if processes > cores:
        raise UsageError(f"--processes {processes} but this machine has no GPU and {cores} CPU core"
                         f"{'s' if cores != 1 else ''}; use at most {cores} CPU processes")
    return "CPU"


def launch(argv: list[str], processes: int, nodes: int = 1, rendezvous: str | None = None, timeout: int = 60) -> int:
    """Run `llmlab <argv>` as processes × nodes ranks; returns the exit code for this machine."""
    check_request(processes, nodes, rendezvous)
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # The launcher's own INFO/WARNING lines (one per rank start) are noise next to rank 0's output.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    saved_env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "TORCHELASTIC_SIGNALS_TO_HANDLE", RUN_DIR_FILE)}
    # torchrun sets OMP_NUM_THREADS=1 and warns; an even share of the cores is the better default on CPU.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    handle, run_dir_file = tempfile.mkstemp(prefix="llmlab-run-dir-")
    os.close(handle)
    os.environ[RUN_DIR_FILE] = run_dir_file
    run_id = "llmlab-" + hashlib.sha256("\0".join(argv).encode()).hexdigest()[:12]  # the same on every machine
    handled = "SIGTERM,SIGQUIT"  # see below: the stop signals the ranks take themselves are not torch's to answer
    extra = {"signals_to_handle": handled} if "signals_to_handle" in {f.name for f in dataclasses.fields(LaunchConfig)} else {}
    config = LaunchConfig(min_nodes=nodes, max_nodes=nodes, nproc_per_node=processes, run_id=run_id,
                          rdzv_backend="c10d", rdzv_endpoint=rendezvous or "localhost:0",
                          rdzv_configs={"timeout": timeout, "join_timeout": timeout}, max_restarts=0,
                          monitor_interval=0.2, start_method="spawn", **extra)
    # Ctrl-C and a dropped SSH link reach the ranks themselves (they stop at the next safe point,
    # together); torch's launcher would answer them by killing the ranks, so it handles only
    # SIGTERM, and a stop sent to the launcher alone (the app's) is passed on to the ranks.
    os.environ["TORCHELASTIC_SIGNALS_TO_HANDLE"] = handled  # what torch versions without the field read
    stops = [s for s in (signal.SIGINT, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {s: signal.signal(s, _pass_on) for s in stops}
    try:
        elastic_launch(config, sys.executable)("-m", "core.cli", *argv)
        return 0
    except ChildFailedError as exc:
        return _failed(exc.failures, Path(run_dir_file), processes * nodes)
    except SignalException as exc:  # SIGTERM to the launcher: torch stopped the ranks (each stops cleanly first)
        return 128 + int(exc.sigval)
    except RendezvousError as exc:
        where = rendezvous or "localhost"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"could not meet the other ranks at {where} within {timeout} s ({first}); check the address "
                         f"and port, that the first machine is up, and that every machine runs the same command") from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for key, value in saved_env.items():  # the ranks' environment, not this process's
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        Path(run_dir_file).unlink(missing_ok=True)


def _pass_on(signum, frame) -> None:
    """Send a stop signal on to the ranks (children of this process); they take a repeat within a second as one."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            child.send_signal(signum)
        except psutil.Error:
            pass


def _failed(failures: dict, run_dir_file: Path, size: int) -> int:
    """One exit code for a job in which some rank exited non-zero; the run folder made consistent.

    Rank 0 says what went wrong itself when it can (its own error line, its summary); the launcher
    speaks only when rank 0 could not: killed, or on another machine.
    """
    from core.distributed import rank_errors
    from core.runs import SUMMARY, read_json

    codes = {rank: f.exitcode for rank, f in failures.items()}
    text = run_dir_file.read_text().strip() if run_dir_file.is_file() else ""
    run_dir = Path(text) if text else None
    summary = {}
    if run_dir is not None and (run_dir / SUMMARY).is_file():
        try:
            summary = read_json(run_dir / SUMMARY)
        except (OSError, ValueError):
            summary = {}
    if summary.get("status") == "stopped":
        return 128 + int(summary.get("stop_signal") or signal.SIGINT)
    if summary.get("status") == "completed":  # rank 0 finished; a rank failed only on the way out
        return 0
    if codes.get(0) in (1, 2):  # rank 0 failed and printed its own line (and wrote the run's end)
        return 2
    if 0 in codes and codes[0] >= 128:  # rank 0 stopped on a signal before it had a run folder
        return codes[0]
    if summary.get("status") == "failed":
        click.echo(f"llmlab: error: {summary.get('error')}", err=True)
        return 2
    killed = sorted(r for r, code in codes.items() if code < 0)  # died on a signal: the cause, not an echo of it
    errors = rank_errors(run_dir) if run_dir else {}
    if killed:
        rank = killed[0]
        message = f"rank {rank} of {size} was killed ({_signal_name(-codes[rank])}); the other ranks stopped"
    else:
        rank = min(errors) if errors else min(r for r in codes if codes[r] != 0)
        message = f"rank {rank} of {size} failed: {errors.get(rank) or f'exit code {codes.get(rank)}'}"
    if run_dir is not None:
        _close_run(run_dir, message, size)
        message += f"; the run folder {run_dir} says failed"
    # A new line first: a killed rank 0 may have left its progress bar without one.
    click.echo(f"\nllmlab: error: {message}", err=True)
    return 2


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _close_run(run_dir: Path, error: str, size: int) -> None:
    """Write the run's end when rank 0 could not (it was killed): summary.json, report.md, the end event."""
    from core.runlog import End, EventLog
    from core.runs import EVENTS, REPORT, SUMMARY, read_json, write_json

    summary_path = run_dir / SUMMARY
    try:
        if summary_path.is_file() and read_json(summary_path).get("status"):
            return
        config = read_json(run_dir / "config.json") if (run_dir / "config.json").is_file() else {}
        summary = {"kind": config.get("kind"), "status": "failed", "error": error, "world_size": size,
                   "run_dir": str(run_dir)}
        write_json(summary_path, summary)
        (run_dir / REPORT).write_text(f"# {run_dir.name}\n\nStatus: **failed**: {error}\n", encoding="utf-8")
        events = EventLog(run_dir / EVENTS)
        events.emit(End(status="failed", error=error, total_seconds=None))
        events.close()
    except OSError:
        pass


__all__ = ["LaunchOptions", "distributed_options", "launch", "check_request", "worker_argv", "remember_argv",
           "RUN_DIR_FILE", "FSDP_NEEDS_RANKS"]
