"""The one run lifecycle every job kind goes through (the run contract in docs/architecture.md).

    inputs checked (nothing written) -> folder claimed -> config.json -> events.jsonl "start"
    -> the kind's work, under stop signals -> summary.json, report.md -> events.jsonl "end"

A kind supplies a `Job`: `prepare()` checks and loads its inputs before any file exists (bad
input is one UsageError and leaves nothing behind), `run(ctx)` does the work and returns the
kind's own summary fields, `report(summary)` renders report.md's text. Everything else is here,
once: the atomic folder claim, stop signals (SIGINT/SIGTERM/SIGHUP), out-of-memory and full-disk
handling, error.txt and status "failed" on a crash, and the summary fields every kind has:
`kind`, `status`, `started`, `total_seconds` (from process start), `hardware`, `optimizations`,
`error`, `world_size`.

With several processes (core/launch.py, torchrun), rank 0 does all of the above; the other ranks
prepare after it (from what it `share()`s), learn the run folder from it, run the same `run(ctx)`
with a context that writes nothing, and on a crash leave only `ranks/rank-N.error`. Rank 0 names
a failed peer in its summary.
"""

from __future__ import annotations

import os
import signal
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from core import distributed
from core.errors import DISK_FULL, OutOfMemory, UsageError
from core.runlog import End, Event, EventLog, Log, Start
from core.runs import CONFIG, ERROR, EVENTS, REPORT, SUMMARY, create_run_dir, process_started, write_json
from core.signals import StopRequest


class Job:
    """What a kind supplies. Subclasses set `kind` and implement prepare, run and report."""

    kind: str = ""
    # What the first stop signal says the job will do, e.g. "finishing the current step".
    stop_message: str = "stopping at the next safe point"
    # The error a second stop signal leaves in the summary.
    interrupted_twice: str = "interrupted twice; stopped at once"

    def __init__(self, config, resume: bool = False) -> None:
        self.config = config
        self.resume = resume  # config.out is a stopped run of this kind to continue

    def prepare(self) -> None:
        """Check and load the inputs; raise UsageError for bad input. Writes nothing."""

    def share(self):
        """What the other ranks need from rank 0's prepare() (picklable); None: they prepare on their own."""
        return None

    def adopt(self, shared) -> None:
        """On ranks other than 0, after rank 0 prepared: prepare from what it shared."""
        self.prepare()

    def config_record(self) -> dict:
        """What config.json records (the lifecycle adds "kind")."""
        return dataclasses_asdict(self.config)

    def start_fields(self) -> dict:
        """Extra fields of the `start` event (e.g. total questions)."""
        return {}

    def run(self, ctx: "RunContext") -> dict:
        """The work; returns the kind's own summary fields ("error" for a failure that is not a crash,
        "status" to judge completion itself instead of by whether a stop was asked for)."""
        raise NotImplementedError

    def oom_message(self, exc: OutOfMemory) -> str:
        return str(exc)

    def finish(self, ctx: "RunContext", summary: dict) -> None:
        """Last files before the report (charts); runs whatever the status."""

    def report(self, run_dir: Path, summary: dict) -> str:
        """report.md's text."""
        raise NotImplementedError

    def end_fields(self, summary: dict) -> dict:
        """Extra fields of the `end` event."""
        return {}

    def closing_line(self, summary: dict, run_dir: Path) -> str | None:
        """The line printed once everything is written (None: nothing)."""
        return None


def dataclasses_asdict(config) -> dict:
    from dataclasses import asdict

    return asdict(config)


@dataclass
class RunContext:
    """What a running job uses from the lifecycle."""

    kind: str
    run_dir: Path
    events: EventLog
    stop: StopRequest
    t0: float                                   # process start, on the monotonic clock
    progress: Callable[[Event], None] | None = None
    external_stop: Callable[[], bool] | None = None
    log_line: Callable[[str], None] | None = None
    on_step: Callable[[int, int], None] | None = None  # (step, total steps) after every training step, for a progress bar
    optimizations: list[str] = field(default_factory=list)
    main: bool = True                           # rank 0 (or the only process): the one that writes the run folder
    tracker: Any = None                         # --report-to: a view of the events in TensorBoard or wandb

    def emit(self, event: Event) -> None:
        """One typed event into events.jsonl (core/runlog/events.py), to the tracker and to the progress callback."""
        self.events.emit(event)
        if self.tracker is not None:
            self.tracker.on_event(event)
        if self.progress is not None:
            self.progress(event)

    def log(self, message: str) -> None:
        """A `log` event (the app shows it; the CLI prints it when it follows events)."""
        self.emit(Log(message=message))

    def announce(self, line: str) -> None:
        """A line for the person at the terminal that the run's log keeps too: a `log` event in events.jsonl (the app
        shows it), printed once, on stdout like `say` (not also by the progress display, which prints `log` events)."""
        self.events.emit(Log(message=line))
        self.say(line)

    def say(self, line: str) -> None:
        """A line for the person at the terminal (the CLI's log callback), not an event."""
        if self.log_line is not None:
            self.log_line(line)

    def should_stop(self) -> bool:
        return self.stop() or (self.external_stop is not None and self.external_stop())

    def write_config(self, record: dict) -> None:
        if not self.main:
            return
        write_json(self.run_dir / CONFIG, {"kind": self.kind, **record})

    def writer(self, path: Path):
        """A JSON-lines writer for a run file; on ranks other than 0 one that writes nothing."""
        from core.runs import JsonlWriter

        return JsonlWriter(path) if self.main else _SilentEvents()

    def seconds(self) -> float:
        return time.monotonic() - self.t0


def run_job(job: Job, progress: Callable[[Event], None] | None = None, should_stop: Callable[[], bool] | None = None,
            log: Callable[[str], None] | None = None, stop: StopRequest | None = None,
            on_step: Callable[[int, int], None] | None = None) -> dict:
    """Run `job` through the whole lifecycle and return its summary (also in summary.json).

    UsageError (bad input, out of memory at the smallest size) propagates as itself, after the
    run folder, if any, says "failed". Any other exception is recorded (error.txt) and re-raised.
    A second stop signal (KeyboardInterrupt) ends the run as "stopped" without raising.
    `stop` replaces the lifecycle's own StopRequest (tests set its signal to stop at a chosen point).
    """
    t0 = process_started()
    w = distributed.init()
    _prepare(job, w)  # bad input stops here, before a folder exists
    if job.resume:
        run_dir = Path(job.config.out)
    else:
        run_dir = Path(distributed.broadcast(str(create_run_dir(job.kind, job.config.out)) if w.main else None))
        job.config.out = str(run_dir)
    pids = [os.getpid()]
    if w.distributed:
        pids = distributed.gather(os.getpid())
        if not w.main:
            return _run_peer(job, run_dir, t0, w, should_stop, stop)
        _tell_launcher(run_dir)
    events = EventLog(run_dir / EVENTS, t0=t0)
    ctx = RunContext(kind=job.kind, run_dir=run_dir, events=events, stop=stop or StopRequest(), t0=t0,
                     progress=progress, external_stop=should_stop, log_line=log, on_step=on_step)
    if ctx.stop._on_signal is None:
        ctx.stop._on_signal = lambda signum: ctx.log(f"{_signal_words(signum)}: {job.stop_message} (Ctrl-C again to stop now)")
    summary: dict = {"kind": job.kind, "status": "failed", "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "run_dir": str(run_dir), "world_size": w.size}
    failure: BaseException | None = None
    # Stop signals stay ours until the run's end is written: a SIGTERM while failing (a launcher
    # stopping the ranks after one died) must not kill the process before summary.json exists.
    ctx.stop.install()
    try:
        if not job.resume:
            ctx.write_config(job.config_record())
        ranks = {"world_size": w.size, "pids": pids} if w.distributed else {}
        ctx.emit(Start(kind=job.kind, pid=os.getpid(), run_dir=str(run_dir), **ranks, **job.start_fields()))
        ctx.tracker = _open_tracker(job, run_dir)
        fields = job.run(ctx)
        status = fields.pop("status", None)  # a kind may judge completeness itself (every question answered)
        summary.update(fields)
        summary["status"] = "failed" if summary.get("error") else status or ("stopped" if ctx.stop.requested else "completed")
    except KeyboardInterrupt:
        summary.update(status="stopped", error=job.interrupted_twice)
    except OutOfMemory as exc:
        summary["error"] = job.oom_message(exc)
        failure = UsageError(summary["error"])
    except UsageError as exc:
        summary["error"] = str(exc)
        failure = exc
    except Exception as exc:
        peer = (distributed.peer_failure(run_dir, w.size) or distributed.lost_peer(pids, exc)) if w.distributed else None
        if peer:  # another rank died first; what rank 0 saw (a closed connection) is only the echo of it
            summary["error"] = peer
            failure = UsageError(peer)
        else:
            summary["error"] = _first_line(exc)
            failure = exc
        try:
            (run_dir / ERROR).write_text(traceback.format_exc(), encoding="utf-8")
        except OSError:
            pass
    finally:
        summary["stop_signal"] = ctx.stop.signal
        try:
            _close(job, ctx, summary, failure)
        finally:
            ctx.stop.restore()
    if failure is not None:
        if isinstance(failure, UsageError):
            raise failure from None
        raise failure
    distributed.barrier()  # the other ranks wait until the run folder is complete, so none is killed mid-write
    return summary


def _close(job: Job, ctx: RunContext, summary: dict, failure: BaseException | None) -> None:
    """Chart, report, summary and the end event, whatever happened; a full disk here never hides the first error."""
    from core.hardware import snapshot

    try:
        summary.setdefault("hardware", snapshot())
        summary.setdefault("optimizations", list(ctx.optimizations))
        summary.setdefault("error", None)
        try:
            job.finish(ctx, summary)
        except Exception as exc:  # a chart must never hide the run's real outcome
            ctx.log(f"could not finish the run's files: {_first_line(exc)}")
        _close_tracker(ctx)  # before the end event, so a tracker's complaint is logged inside the run
        summary["total_seconds"] = round(ctx.seconds(), 3)
        (ctx.run_dir / REPORT).write_text(job.report(ctx.run_dir, summary), encoding="utf-8")
        write_json(ctx.run_dir / SUMMARY, summary)
        ctx.emit(End(status=summary["status"], error=summary.get("error"), total_seconds=summary["total_seconds"],
                     **job.end_fields(summary)))
        line = job.closing_line(summary, ctx.run_dir)
        if line:
            ctx.say(line)
    except OSError as exc:
        if exc.errno not in DISK_FULL or failure is None:
            raise
        # The disk is full and the run is failing because of it: the first error is the one to report.
    finally:
        try:
            _close_tracker(ctx)
        except OSError:
            pass
        ctx.events.close()


def _open_tracker(job: Job, run_dir: Path):
    report_to = getattr(job.config, "report_to", "none")
    if report_to in (None, "none"):
        return None
    from core.trackers import open_tracker

    return open_tracker(report_to, run_dir, job.config_record())


def _close_tracker(ctx: RunContext) -> None:
    tracker, ctx.tracker = ctx.tracker, None
    if tracker is not None:
        tracker.close()
        if tracker.failed:
            ctx.log(tracker.failed)


def _prepare(job: Job, w) -> None:
    """job.prepare(); with several ranks, rank 0 first, then the others from what it shares.

    Rank 0's bad input reaches every rank, so all of them stop with it (only rank 0 says it).
    """
    if not w.distributed:
        job.prepare()
        return
    outcome = None  # (bad input, what the other ranks need): one broadcast carries both
    if w.main:
        try:
            job.prepare()
            outcome = (None, job.share())
        except UsageError as exc:
            outcome = (str(exc), None)
    problem, shared = distributed.broadcast(outcome)
    if problem is not None:
        raise UsageError(problem)
    if not w.main:
        job.adopt(shared)


def _run_peer(job: Job, run_dir: Path, t0: float, w, should_stop, stop) -> dict:
    """A rank other than 0: the same work, writing nothing but its error file when it fails."""
    ctx = RunContext(kind=job.kind, run_dir=run_dir, events=_SilentEvents(), stop=stop or StopRequest(), t0=t0,
                     external_stop=should_stop, main=False)
    ctx.stop._on_signal = lambda signum: None  # rank 0 says it
    try:
        with ctx.stop:
            fields = job.run(ctx)
    except KeyboardInterrupt:
        return {"kind": job.kind, "status": "stopped", "rank": w.rank}
    except OutOfMemory as exc:
        distributed.record_rank_error(run_dir, w.rank, job.oom_message(exc))
        raise UsageError(job.oom_message(exc)) from None
    except UsageError as exc:
        distributed.record_rank_error(run_dir, w.rank, str(exc))
        raise
    except Exception as exc:
        # The traceback goes to the rank's error file, not the terminal: rank 0 (or the launcher) says what failed.
        distributed.record_rank_error(run_dir, w.rank, _first_line(exc), traceback.format_exc())
        raise UsageError(_first_line(exc)) from None
    distributed.barrier()  # rank 0 is writing the run's end; leaving now would make the launcher stop it
    status = fields.get("status") or ("stopped" if ctx.stop.requested else "completed")
    return {"kind": job.kind, "status": "failed" if fields.get("error") else status, "rank": w.rank,
            "error": fields.get("error"), "stop_signal": ctx.stop.signal}


class _SilentEvents:
    """The event log (and run files) of a rank that is not rank 0: rank 0 writes the run's files."""

    def emit(self, event: Event) -> None:
        pass

    def write(self, obj: dict) -> None:
        pass

    def __enter__(self) -> "_SilentEvents":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def close(self) -> None:
        pass


def _tell_launcher(run_dir: Path) -> None:
    """Rank 0 leaves its run folder's path where llmlab's launcher looks, so it can name it if a rank dies."""
    from core.launch import RUN_DIR_FILE

    path = os.environ.get(RUN_DIR_FILE)
    if path:
        try:
            Path(path).write_text(str(run_dir), encoding="utf-8")
        except OSError:
            pass


def _signal_words(signum: int) -> str:
    return "interrupted" if signum == signal.SIGINT else f"{signal.Signals(signum).name} received"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


__all__ = ["Job", "RunContext", "run_job"]
