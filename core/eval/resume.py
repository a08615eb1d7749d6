"""Resuming an eval: rows are keyed by the run's settings, so only matching answers are reused.

Every results.jsonl row carries a `key` (a hash of the run's settings, the question's index and
its prompt) and config.json the settings it was made under (`settings`, `settings_hash`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from core.errors import UsageError
from core.eval.config import EvalConfig
from core.mmmlu import PROMPT_TEMPLATE
from core.options import config_from_record
from core.runlog.reader import load_run_config
from core.runs import iter_jsonl


def resume_config(run_dir: str | Path) -> EvalConfig:
    """The options of the eval run in `run_dir`, to continue it with run_eval(..., resume=True)."""
    path, config = load_run_config(run_dir, "eval")
    if not config.get("settings_hash"):
        raise UsageError(f"{path} was written by an older llmlab that did not key its results, so it cannot be resumed; "
                         f"start a new run")
    return config_from_record(EvalConfig, config, str(path))


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def settings_of(config: EvalConfig, model_path: Path, data_path: Path, dtype: str, context: int | None,
                adapters: list[Path] = ()) -> dict:
    """Everything a result row depends on; a resume must match all of it."""
    from fnmatch import fnmatch

    from core.lm.demo import DEMO_MODEL_NAME
    from core.lm.loading import MODEL_FILES

    if config.demo:  # rebuilt the same way in every cache folder
        model = {"model": DEMO_MODEL_NAME}
    else:
        files = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in model_path.iterdir()
                       if f.is_file() and any(fnmatch(f.name, pattern) for pattern in MODEL_FILES))
        model = {"model": str(model_path), "model_files": digest(files)}
    settings = {**model, "data_sha256": _file_sha256(data_path), "prompt_template": digest(PROMPT_TEMPLATE),
                "mode": config.mode, "dtype": dtype, "context": context}
    # Added only when set, so the settings (and the resume keys) of runs made before these options stay the same.
    if config.quantize != "none":
        settings["quantize"] = config.quantize
    if config.chat:
        settings["chat"] = True
    if config.mode == "logprob":  # runs before --letters scored bare letters; theirs resume only with --letters bare
        if config.letters != "bare":
            settings["letters"] = config.letters
    if adapters:  # the adapter's weights, by content: retraining into the same folder is another model
        settings["adapters"] = [_file_sha256(Path(a) / "adapter_model.safetensors") for a in adapters]
    if config.mode == "generate":
        settings.update(max_new_tokens=config.max_new_tokens, stop_at_answer=config.stop_at_answer, backend=config.backend,
                        static_cache=config.static_cache, compile=config.compile, cuda_graphs=config.cuda_graphs)
    return settings


def row_key(settings_hash: str, question, occurrence: int = 0) -> str:
    base = [settings_hash, str(question.index), question.prompt]
    return digest(base if occurrence == 0 else [*base, occurrence])


def row_keys(settings_hash: str, questions) -> list[str]:
    """One key per question; a row repeated in the CSV (same index and prompt) gets its own key per repeat."""
    seen: dict[tuple, int] = {}
    keys = []
    for q in questions:
        n = seen.get((str(q.index), q.prompt), 0)
        seen[(str(q.index), q.prompt)] = n + 1
        keys.append(row_key(settings_hash, q, n))
    return keys


_SETTING_WORDS = {"data_sha256": "the data file changed (its sha256 differs)", "model": "the model folder changed",
                  "model_files": "the model's files changed", "prompt_template": "llmlab's prompt template changed"}


def check_same_settings(run_dir: Path, previous: dict, settings: dict, settings_hash: str) -> None:
    if previous.get("settings_hash") == settings_hash:
        return
    old = previous.get("settings") or {}
    changed = [_SETTING_WORDS.get(k, f"{k} was {old.get(k)!r}, now {settings.get(k)!r}")
               for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
    raise UsageError(f"cannot resume {run_dir}: {'; '.join(changed) or 'its settings changed'} since it started, "
                     f"so its answers would not be comparable; start a new run")


def reusable_rows(path: Path, keys: list[str]) -> tuple[list[dict], bool]:
    """(rows to keep: one per expected key, first seen wins; whether results.jsonl needs cleaning).

    A torn last line (a write cut short by a crash or kill) is not a row: that question runs again.
    """
    wanted, kept, seen, lines = set(keys), [], set(), 0
    for row in iter_jsonl(path):
        lines += 1
        key = row.get("key")
        if key in wanted and key not in seen:
            seen.add(key)
            kept.append(row)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return kept, False
    complete_lines = raw.count(b"\n")
    return kept, len(kept) != lines or lines != complete_lines or not raw.endswith(b"\n") and bool(raw)


def recorded_path(previous: dict | None, key: str) -> Path | None:
    """A path a resumed run recorded, when it is still there (so a resume works from any folder)."""
    value = (previous or {}).get(key)
    return Path(value) if value and Path(value).exists() else None
