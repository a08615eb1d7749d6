"""SQuAD v1.1 scoring (exact match, token F1) and reading SQuAD data and prediction files.

The metric keeps the official v1.1 evaluation script's definitions, corner cases included, so
the numbers compare with published ones. Standard library only; pyarrow is imported just when a
.parquet file is read.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Iterator

# --- normalization and the two metrics -----------------------------------------------------

# string.punctuation is ASCII only, as in the official script: "，。" and curly quotes survive.
_PUNCTUATION = frozenset(string.punctuation)
# Run after punctuation removal, so "the-cat" becomes "thecat" and keeps its letters.
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """The official v1.1 normalization: lower-case, drop ASCII punctuation, drop articles, collapse spaces.

    The order matters and is the script's: white_space_fix(remove_articles(remove_punc(lower(s)))).
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when both sides normalize to the same string, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 of the normalized strings, repeated tokens counted with multiplicity.

    As in the official v1.1 code, no common token means 0.0, even when both sides normalize to
    nothing (then exact_match is 1.0 but F1 is 0.0; v2.0 changed that, v1.1 did not).
    """
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def best_over_golds(metric: Callable[[str, str], float], prediction: str, golds: Iterable[str]) -> float:
    """The best score over the gold answers: a question counts as right if any gold answer matches."""
    golds = list(golds)
    if not golds:
        raise ValueError("no gold answers to score against; every SQuAD v1.1 question has at least one")
    return max(metric(prediction, gold) for gold in golds)


def _shown(ids: list[str], limit: int = 5) -> str:
    return ", ".join(ids[:limit]) + (", ..." if len(ids) > limit else "")


def score_predictions(examples: list[dict], predictions: dict[str, str]) -> dict:
    """EM and F1 of `predictions` (id -> text) against `examples` (dicts with "id" and "answers").

    Aggregates are percentages like the official script's output; per-row em/f1 stay 0..1. A
    missing prediction is an error rather than a silent zero, since it usually means the wrong file.
    Predictions for ids not in `examples` are ignored. No examples give 0.0 for both aggregates.
    """
    missing = [str(example["id"]) for example in examples if example["id"] not in predictions]
    if missing:
        raise ValueError(f"predictions are missing {len(missing)} of {len(examples)} question ids: {_shown(missing)}")
    rows = []
    for example in examples:
        prediction = predictions[example["id"]]
        golds = list(example["answers"])
        rows.append({
            "id": example["id"],
            "prediction": prediction,
            "golds": golds,
            "em": best_over_golds(exact_match, prediction, golds),
            "f1": best_over_golds(f1, prediction, golds),
        })
    n = len(rows)
    return {
        "exact_match": 100.0 * sum(row["em"] for row in rows) / n if n else 0.0,
        "f1": 100.0 * sum(row["f1"] for row in rows) / n if n else 0.0,
        "n": n,
        "rows": rows,
    }


# --- reading files ---------------------------------------------------------------------------

_DATA_HINT = "pass a SQuAD v1.1 JSON (e.g. dev-v1.1.json), a .jsonl or a .parquet file"
_FORMS = ("expected the official SQuAD JSON (an object with a 'data' list of articles -> paragraphs -> qas) "
          "or flat rows with id, title, context, question, answers (a JSON list, .jsonl or .parquet)")


def _json_type(value) -> str:
    """The JSON name of a parsed value's type, for messages ("an array", not "a list")."""
    if isinstance(value, bool):
        return "a boolean"
    for kind, name in ((dict, "an object"), (list, "an array"), (str, "a string"), ((int, float), "a number")):
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def _read_text(path: Path, what: str, hint: str) -> str:
    """The file's text (core.textfile's checks: missing, binary, UTF-16, not UTF-8), problems as this module's ValueError."""
    from core.errors import UsageError
    from core.textfile import read_text

    try:
        return read_text(path, what, hint)
    except UsageError as exc:
        raise ValueError(str(exc)) from None


def _json_lines(path: Path, text: str) -> Iterator[tuple[str, object]]:
    """(position, parsed value) for each non-blank line of a JSON Lines text."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"{path} line {number}", json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} line {number} is not valid JSON ({exc.msg}); a .jsonl file holds one JSON object "
                             "per line") from None


def _parquet_rows(path: Path) -> Iterator[tuple[str, object]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(f"reading {path} needs pyarrow (`pip install pyarrow`), or convert it to JSON Lines first") from None
    try:
        table = pq.read_table(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path} is not a readable Parquet file ({reason}); {_FORMS}") from None
    for number, row in enumerate(table.to_pylist(), 1):
        yield f"{path} row {number}", row


def _answers(raw, where: str) -> tuple[list[str], list[int]]:
    """Gold texts and start offsets from either answer shape.

    Official form: [{"text": ..., "answer_start": int}, ...]; flat (Hugging Face) form:
    {"text": [...], "answer_start": [...]}. A missing start becomes -1: scoring never needs it.
    """
    if isinstance(raw, dict):
        texts, starts = raw.get("text"), raw.get("answer_start")
        if not isinstance(texts, list):
            raise ValueError(f"{where}: 'answers' needs a 'text' list, as in {{\"text\": [...], \"answer_start\": [...]}}")
        if starts is None:
            starts = [-1] * len(texts)
        if not isinstance(starts, list) or len(starts) != len(texts):
            raise ValueError(f"{where}: 'answers' has {len(texts)} text(s) but 'answer_start' is not a list of as many offsets")
    elif isinstance(raw, list):
        if not all(isinstance(item, dict) for item in raw):
            raise ValueError(f"{where}: each answer must be an object such as {{\"text\": \"...\", \"answer_start\": 0}}")
        texts = [item.get("text") for item in raw]
        starts = [item.get("answer_start", -1) for item in raw]
    elif raw is None:
        raise ValueError(f"{where}: question has no 'answers'; SQuAD v1.1 gives every question at least one gold answer")
    else:
        raise ValueError(f"{where}: 'answers' is {_json_type(raw)}; expected a list of answers or a "
                         "{\"text\": [...], \"answer_start\": [...]} object")
    if not texts:
        raise ValueError(f"{where}: question has an empty answer list; SQuAD v1.1 gives every question at least one "
                         "(unanswerable SQuAD v2 questions are not supported)")
    for text in texts:
        if not isinstance(text, str):
            raise ValueError(f"{where}: an answer text is {_json_type(text)}, not a string")
    for start in starts:
        if isinstance(start, bool) or not isinstance(start, int):
            raise ValueError(f"{where}: an answer_start is {_json_type(start)}, not an integer offset")
    return list(texts), list(starts)


def _example(where: str, record, title, context) -> dict:
    """One flat example from a qas entry (title/context given) or a flat row (title/context inside it)."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a question object, found {_json_type(record)}")
    qid = record.get("id")
    # Integer ids are accepted but stored as text: a predictions JSON can only have string keys.
    if isinstance(qid, bool) or not isinstance(qid, (str, int)) or qid == "":
        raise ValueError(f"{where}: question has no 'id'; every question needs a unique id, "
                         "the key its prediction is stored under")
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"{where}: question {qid} has no question text ('question')")
    for name, value in (("title", title), ("context", context)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{where}: '{name}' is {_json_type(value)}, not a string")
    if not context or not context.strip():  # answering without the passage would score a model on nothing
        raise ValueError(f"{where}: question {qid} has no passage ('context'); SQuAD questions are answered from one")
    texts, starts = _answers(record.get("answers"), where)
    return {"id": str(qid), "title": title or "", "context": context or "", "question": question,
            "answers": texts, "answer_starts": starts}


def _nested(path: Path, articles: list) -> Iterator[tuple[str, dict]]:
    """(position, example) for every question of the official data -> paragraphs -> qas nesting."""
    for i, article in enumerate(articles):
        where = f"{path} data[{i}]"
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise ValueError(f"{where}: expected an article object with a 'paragraphs' list")
        for j, paragraph in enumerate(article["paragraphs"]):
            where_p = f"{where}.paragraphs[{j}]"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
                raise ValueError(f"{where_p}: expected a paragraph object with a 'context' and a 'qas' list")
            for k, qa in enumerate(paragraph["qas"]):
                where_q = f"{where_p}.qas[{k}]"
                yield where_q, _example(where_q, qa, article.get("title"), paragraph.get("context"))


def _flat(rows: Iterable[tuple[str, object]]) -> Iterator[tuple[str, dict]]:
    for where, row in rows:
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a row object with id, title, context, question, answers, "
                             f"found {_json_type(row)}")
        yield where, _example(where, row, row.get("title"), row.get("context"))


def _json_examples(path: Path) -> Iterator[tuple[str, dict]]:
    text = _read_text(path, "SQuAD file", _DATA_HINT)
    if path.suffix.lower() == ".jsonl":
        return _flat(_json_lines(path, text))
    if not text.strip():
        raise ValueError(f"{path} is empty; {_FORMS}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # Several JSON values one after another: JSON Lines under a .json name, which is what
        # `datasets`' to_json() writes by default.
        if exc.msg == "Extra data":
            return _flat(_json_lines(path, text))
        raise ValueError(f"{path} is not valid JSON ({exc}); {_FORMS}") from None
    if isinstance(data, list):
        return _flat((f"{path} row {number}", row) for number, row in enumerate(data, 1))
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return _nested(path, data["data"])
    found = f"an object with keys {', '.join(map(str, list(data)[:8]))}" if isinstance(data, dict) else _json_type(data)
    raise ValueError(f"{path} is JSON but in neither SQuAD form (found {found}); {_FORMS}")


def load_squad(path: str | Path) -> list[dict]:
    """Flat examples {"id", "title", "context", "question", "answers", "answer_starts"} from a SQuAD file.

    Reads the official nested JSON, or flat rows (Hugging Face's `squad` layout) as a JSON list,
    JSON Lines or Parquet. Every problem is a ValueError whose one line names the place and the fix.
    """
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        if not path.is_file():
            raise ValueError(f"SQuAD file {path} does not exist; {_DATA_HINT}")
        located = _flat(_parquet_rows(path))
    else:
        located = _json_examples(path)
    examples: list[dict] = []
    seen: dict[str, str] = {}
    for where, example in located:
        # Ids key the predictions file, so a repeated id would make two questions share one answer.
        if example["id"] in seen:
            raise ValueError(f"duplicate question id {example['id']} ({seen[example['id']]} and {where}); ids must be unique")
        seen[example["id"]] = where
        examples.append(example)
    if not examples:
        raise ValueError(f"{path} holds no questions; {_FORMS}")
    return examples


def load_predictions(path: str | Path) -> dict[str, str]:
    """The official predictions file: one JSON object mapping each question id to its answer text."""
    path = Path(path)
    text = _read_text(path, "predictions file", 'pass a JSON object such as {"<question id>": "<answer text>"}')
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); expected an object such as "
                         '{"<question id>": "<answer text>"}') from None
    if not isinstance(data, dict):
        raise ValueError(f'{path} holds {_json_type(data)}; predictions must be one JSON object {{"<question id>": '
                         '"<answer text>"}')
    for qid, answer in data.items():
        if not isinstance(answer, str):
            raise ValueError(f"{path}: the prediction for question id {qid} is {_json_type(answer)}, not a string; "
                             "every value must be the answer text")
    return data
