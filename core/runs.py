"""Run directories: one folder per job holding config, events, summary, report and artefacts.

Every writer here is safe to read while it writes: JSON files are replaced atomically and
`events.jsonl` grows one flushed line at a time, so the app can tail a live run and readers
only ever have to skip a half-written last line.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from core.errors import UsageError

RUNS_ENV = "LLMLAB_RUNS_DIR"
# The files of the run contract (docs/architecture.md); core writes them, the app reads them.
CONFIG = "config.json"      # every resolved option, with "kind"
EVENTS = "events.jsonl"     # start ... end, one flushed JSON event per line
RESULTS = "results.jsonl"   # one line per question, for kinds that answer questions
SUMMARY = "summary.json"    # the common fields plus the kind's own
REPORT = "report.md"
ERROR = "error.txt"         # the traceback of a crash
SAMPLE_REQUEST = "sample.request"  # the app creates it to ask a running pretraining for generation samples now
# The app captures a job's stdout/stderr here before the job starts, so a folder holding only
# this file still counts as a fresh, empty run directory.
JOB_LOG = "job.log"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def runs_root() -> Path:
    """The folder that holds every run: $LLMLAB_RUNS_DIR, else ./runs."""
    return Path(os.environ.get(RUNS_ENV) or "runs").expanduser()


def cache_dir() -> Path:
    """llmlab's cache folder (token ids, demo models): $LLMLAB_CACHE_DIR, else ~/.cache/llmlab."""
    return Path(os.environ.get("LLMLAB_CACHE_DIR") or Path.home() / ".cache" / "llmlab").expanduser()


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return str(value)


def dumps(obj: Any, indent: int | None = None) -> str:
    return json.dumps(obj, ensure_ascii=False, default=_to_jsonable, indent=indent)


def _replace_atomically(path: Path, text: str) -> None:
    """Write a sibling temporary file, fsync it, then rename it over `path`: a reader sees the old
    file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    """Replace a JSON file atomically with `obj`."""
    _replace_atomically(path, dumps(obj, indent=2) + "\n")


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def iter_jsonl(path: Path) -> Iterator[dict]:
    """Every complete JSON line of `path`; a torn last line (a writer mid-flush) is skipped.

    Read as bytes and decoded line by line: a write cut inside a multi-byte character (Chinese
    text in results.jsonl) must not break the lines before it.
    """
    try:
        fh = open(path, "rb")
    except OSError:
        return
    with fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break
            try:
                yield json.loads(line.decode("utf-8"))
            except ValueError:  # UnicodeDecodeError is a ValueError too
                continue


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Replace a JSON-lines file atomically with `rows`."""
    _replace_atomically(path, "".join(dumps(row) + "\n" for row in rows))


class JsonlWriter:
    """Appends one JSON object per line and flushes each, so followers see it at once."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, obj: dict) -> None:
        self._fh.write(dumps(obj) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def process_started() -> float:
    """When this process started, on the monotonic clock (so durations include Python's imports)."""
    try:
        import psutil

        age = time.time() - psutil.Process().create_time()
    except Exception:
        age = 0.0
    return time.monotonic() - max(0.0, age)


def _check_writable(folder: Path) -> None:
    probe = folder / f".llmlab-write-test-{os.getpid()}"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to {folder} ({exc.strerror}); pass --out to a writable folder") from None


def _fresh(path: Path) -> bool:
    """An --out folder a new run may take: missing, or empty but for the app's job.log."""
    return not path.exists() or (path.is_dir() and all(p.name == JOB_LOG for p in path.iterdir()))


def claim_run_dir(kind: str, out: str | Path | None = None, root: Path | None = None) -> Path:
    """Make a new, empty run folder and return its absolute path; an existing folder is never reused.

    With `out` the folder is exactly there (it must not exist yet, or be empty but for job.log).
    Otherwise it goes under the runs folder as `<timestamp>-<kind>`, with a numeric suffix when
    two jobs start in the same second: `mkdir` without exist_ok is the atomic claim. The app
    claims a folder this way before it starts a job in it (`--out`), so its job.log exists first.
    """
    if out is not None:
        path = Path(out).expanduser()
        if path.is_file():
            raise UsageError(f"--out {path} is a file; choose a new folder so nothing is overwritten")
        if not _fresh(path):
            raise UsageError(f"--out {path} already exists and is not empty; choose a new folder so nothing is overwritten")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create --out {path} ({exc.strerror}); choose a writable folder") from None
        _check_writable(path)
        return path.resolve()
    root = root or runs_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the runs folder {root} ({exc.strerror}); set {RUNS_ENV} or pass --out") from None
    _check_writable(root)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        name = f"{stamp}-{kind}" if n == 1 else f"{stamp}-{kind}-{n}"
        path = root / name
        try:
            path.mkdir()
            return path.resolve()
        except FileExistsError:
            continue
        except OSError as exc:
            raise UsageError(f"cannot create a run folder in {root} ({exc.strerror}); set {RUNS_ENV} or pass --out") from None
    raise UsageError(f"could not find a free run name under {root}")


def create_run_dir(kind: str, out: str | Path | None = None) -> Path:
    """The run folder a job writes: claimed as above, and with `out` its events.jsonl created exclusively.

    An --out folder may already exist (the app makes it for job.log), so making it claims
    nothing; creating events.jsonl exclusively does: of two jobs given the same --out at the same
    moment, exactly one gets it.
    """
    path = claim_run_dir(kind, out)
    if out is not None:
        try:
            (path / EVENTS).open("x").close()
        except FileExistsError:
            raise UsageError(f"--out {path} was just taken by another job; choose a new folder") from None
        except OSError as exc:
            raise UsageError(f"cannot write to {path} ({exc.strerror}); pass --out to a writable folder") from None
    return path


def resolve_run_name(name: str, root: Path | None = None) -> Path:
    """A run folder named by the user, kept strictly inside the runs folder."""
    root = (root or runs_root()).resolve()
    if not _SAFE_NAME.match(name):
        raise UsageError(f"run name {name!r} may use only letters, digits, '.', '_' and '-'")
    path = (root / name).resolve()
    if path.parent != root:
        raise UsageError(f"run name {name!r} must stay inside {root}")
    return path


def list_runs(root: Path | None = None) -> list[Path]:
    """Run directories under the runs folder, newest first (by name, which starts with a timestamp)."""
    root = root or runs_root()
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if p.is_dir() and (p / CONFIG).exists()]
    return sorted(runs, key=lambda p: p.name, reverse=True)
