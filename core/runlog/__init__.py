"""The run log: the typed events of events.jsonl (events.py), their one writer (writer.py) and the one
reader of run folders (reader.py) that the engine and the app share."""

from core.runlog.events import (  # noqa: F401 (the package's API)
    EVENT_TYPES,
    Checkpoint,
    End,
    EvalLoss,
    Event,
    Heartbeat,
    Log,
    Lora,
    Loss,
    MicroBatchHalved,
    Phase,
    Plan,
    Progress,
    Resume,
    Sample,
    Start,
    Unknown,
    parse,
)
from core.runlog.reader import (  # noqa: F401
    JsonlTail,
    RunFolder,
    RunFollower,
    RunsReader,
    question_key,
    read_events,
    scan_folders,
)
from core.runlog.writer import EventLog  # noqa: F401
