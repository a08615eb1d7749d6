"""Every event a run writes to events.jsonl, defined once.

A run's events.jsonl is the record the app, the reports, the trackers and `--resume` read, so its
shape lives here and nowhere else: each event type is a dataclass whose fields are exactly the
keys of its JSON line. The writer (core/runlog/writer.py) adds `type`, `time` (wall clock) and
`elapsed` (monotonic seconds since the process started); the reader (core/runlog/reader.py)
turns lines back into these classes.

A field with a default of None is optional: it is left out of the line when it is None, unless it is
declared with `ALWAYS` (a rate that is not known yet is written as null, so every line of that type
has the same keys). A field without a default is always written, even when its value is None (an
`end` without an error still says `"error": null`). A line with keys this version does not know (written by a newer llmlab)
keeps them in `extra`, so nothing a reader does not understand is lost or fatal.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

EVENT_TYPES: dict[str, type["Event"]] = {}
ALWAYS = {"always": True}  # field metadata: written even when None


def _register(cls: type["Event"]) -> type["Event"]:
    EVENT_TYPES[cls.type] = cls
    return cls


@dataclass(kw_only=True)
class Event:
    type: ClassVar[str] = ""
    time: float | None = None          # unix time, stamped by the writer
    elapsed: float | None = None       # seconds since the writing process started (monotonic), stamped by the writer
    extra: dict = field(default_factory=dict)  # keys this version does not know

    def record(self) -> dict:
        """The event as its JSON line's object."""
        out: dict[str, Any] = {"type": self.type}
        if self.time is not None:
            out["time"] = self.time
        if self.elapsed is not None:
            out["elapsed"] = self.elapsed
        for f in dataclasses.fields(self):
            if f.name in ("time", "elapsed", "extra"):
                continue
            value = getattr(self, f.name)
            if value is None and f.default is None and not f.metadata.get("always"):  # optional and not given
                continue
            out[f.name] = value
        out.update(self.extra)
        return out

    def __getitem__(self, name: str):
        """The event read like its JSON object: event["step"] (KeyError when the line has no such key)."""
        return self.record()[name]

    def get(self, name: str, default=None):
        """A field by name, or `default` (also for keys only a newer llmlab writes)."""
        if name in self.extra:
            return self.extra[name]
        value = getattr(self, name, None)
        return default if value is None else value


@_register
@dataclass(kw_only=True)
class Start(Event):
    """The first line of every process that works on the run (a resumed run has one per process)."""

    type: ClassVar[str] = "start"
    kind: str
    pid: int
    run_dir: str
    world_size: int | None = None      # several processes: how many ranks
    pids: list | None = None           # several processes: every rank's pid
    total: int | None = None           # questions to answer
    epochs: int | None = None
    rows: int | None = None
    voters: int | None = None
    demo: bool | None = None


@_register
@dataclass(kw_only=True)
class End(Event):
    """The last line: how the run (or this process's part of it) ended."""

    type: ClassVar[str] = "end"
    status: str                        # completed | stopped | failed
    error: str | None
    total_seconds: float | None
    accuracy: float | None = None
    n: int | None = None
    exact_match: float | None = None
    f1: float | None = None


@_register
@dataclass(kw_only=True)
class Log(Event):
    type: ClassVar[str] = "log"
    message: str


@_register
@dataclass(kw_only=True)
class Phase(Event):
    """A phase of the run has just finished (data, tokenize, model_init, compile, train, save ...)."""

    type: ClassVar[str] = "phase"
    name: str
    seconds: float | None = None
    cache_hit: bool | None = None


@_register
@dataclass(kw_only=True)
class Plan(Event):
    """What training will do, once the data is ready."""

    type: ClassVar[str] = "plan"
    total_steps: int
    steps_per_epoch: int
    n_params: int | None = None
    blocks: int | None = None          # pretraining: packed blocks per epoch
    tokens_per_epoch: int | None = None
    examples: int | None = None        # fine-tuning: training examples
    trainable_params: int | None = None


@_register
@dataclass(kw_only=True)
class Loss(Event):
    """The mean training loss since the previous one (written every --log-every steps)."""

    type: ClassVar[str] = "loss"
    step: int
    epoch: int
    loss: float
    lr: float | None = None
    tokens_per_s: float | None = None
    total_steps: int | None = None


@_register
@dataclass(kw_only=True)
class EvalLoss(Event):
    """A held-out (pretraining) or val (fine-tuning) loss check."""

    type: ClassVar[str] = "eval"
    step: int
    epoch: float
    eval_loss: float


@_register
@dataclass(kw_only=True)
class Heartbeat(Event):
    type: ClassVar[str] = "heartbeat"
    step: int


@_register
@dataclass(kw_only=True)
class Checkpoint(Event):
    type: ClassVar[str] = "checkpoint"
    step: int
    path: str


@_register
@dataclass(kw_only=True)
class Resume(Event):
    """A stopped run goes on: training from a checkpoint, or answering the questions still missing."""

    type: ClassVar[str] = "resume"
    step: int | None = None
    epoch: int | None = None
    checkpoint: str | None = None
    reused: int | None = None          # questions already answered
    remaining: int | None = None
    total: int | None = None


@_register
@dataclass(kw_only=True)
class Progress(Event):
    """Questions answered so far (of a test phase, for kinds with several)."""

    type: ClassVar[str] = "progress"
    done: int
    total: int | None
    correct: int | None = None
    batch_size: int | str | None = field(default=None, metadata=ALWAYS)
    tokens_per_s: float | None = field(default=None, metadata=ALWAYS)
    phase: str | None = None


@_register
@dataclass(kw_only=True)
class Sample(Event):
    """A generation sample drawn during pretraining, with what flags a degenerate one."""

    type: ClassVar[str] = "sample"
    step: int
    prompt: str
    text: str
    mode: str                          # greedy | top_p
    new_tokens: int
    distinct_2: float
    longest_repeat: int
    degenerate: bool


@_register
@dataclass(kw_only=True)
class Lora(Event):
    """The adapter a fine-tuning run trains: its size against the base model's."""

    type: ClassVar[str] = "lora"
    trainable_params: int
    total_params: int
    trainable_ratio: float
    target_modules: Any


@_register
@dataclass(kw_only=True)
class MicroBatchHalved(Event):
    """A step ran out of memory; the micro-batch was halved and the step runs again."""

    type: ClassVar[str] = "oom"
    step: int
    micro_batch_size: int
    accumulation: int | None = None


@dataclass(kw_only=True)
class Unknown(Event):
    """A line whose type this version does not know; its keys are all in `extra`."""

    type: str = ""  # type: ignore[misc]  (an instance field here: the line's own type)

    def record(self) -> dict:
        return {"type": self.type, **({"time": self.time} if self.time is not None else {}),
                **({"elapsed": self.elapsed} if self.elapsed is not None else {}), **self.extra}


def parse(record: dict) -> Event:
    """An event from its JSON line's object; unknown types and keys are kept, missing fields are None."""
    kind = record.get("type")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    rest = {k: v for k, v in record.items() if k != "type"}
    if cls is None:
        return Unknown(type=str(kind), time=rest.pop("time", None), elapsed=rest.pop("elapsed", None), extra=rest)
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    known = {name: rest.pop(name, None) for name in names}  # a field a line lacks reads as None
    return cls(**known, extra=rest)


__all__ = ["EVENT_TYPES", "Event", "Start", "End", "Log", "Phase", "Plan", "Loss", "EvalLoss", "Heartbeat", "Checkpoint",
           "Resume", "Progress", "Sample", "Lora", "MicroBatchHalved", "Unknown", "parse"]
