"""Exam questions in, leak-free splits and training examples out.

Sources: an MMMLU-shaped CSV (`Question,A,B,C,D,Answer` and `Subject`), a folder of per-subject
CSVs where the file name is the subject (as CMMLU ships), or alpaca JSON/JSONL in seed 001's
multiple-choice form. Fields are used exactly as read.

The order is what keeps the test honest (seed 001 drew val/test rows from shuffled copies of
questions it also trained on): questions are split first, by a stable id per source question,
and only the training questions are then copied with their options shuffled.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from core.errors import UsageError
from core.mmmlu import LETTERS
from core.textfile import read_text

FINETUNE_COLUMNS = ("Question", "A", "B", "C", "D", "Answer")


@dataclass(frozen=True)
class ExamQuestion:
    question_id: str          # the question's content: a hash of its text and its set of options (content_id)
    subject: str
    question: str
    options: dict             # {"A": text, ..., "D": text}
    gold: str                 # the letter of the right option
    group: str = ""           # seed 002: the record (passage) it belongs to; splits keep a group together
    passage: str = ""         # seed 002: the passage its question is asked about

    @property
    def stem(self) -> str:
        """What the prompt asks: the passage, then the question (the question alone when there is no passage)."""
        return f"{self.passage}\n{self.question}" if self.passage else self.question

    @property
    def unit(self) -> str:
        """What a split keeps whole: the record for seed 002's sub-questions, else the question itself."""
        return self.group or self.question_id

    def shuffled(self, order: tuple[str, ...]) -> "ExamQuestion":
        """The same question with its options in `order` (new A gets old order[0]); gold follows its text."""
        from dataclasses import replace

        options = {new: self.options[old] for new, old in zip(LETTERS, order)}
        return replace(self, options=options, gold=LETTERS[order.index(self.gold)])


def content_id(question: str, options=()) -> str:
    """A question's identity: its text and its set of options (spacing and option order do not matter), so the same
    question repeated in another file, under another subject or with its options shuffled is one question, and
    can never be in two splits."""
    norm = lambda text: " ".join(str(text).split())  # noqa: E731
    raw = json.dumps([norm(question), sorted(norm(o) for o in options)], ensure_ascii=False)
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()[:12]


def identity(q) -> str:
    """The content id of an exam question (its question_id) or of a math question (its text: its id is the file's)."""
    return q.question_id if hasattr(q, "options") else content_id(q.question)


def unit_of(q) -> str:
    """What a split keeps whole: seed 002's record for its sub-questions, else the question's content id."""
    return getattr(q, "unit", None) or identity(q)


def _question(subject: str, question: str, options: dict, answer: str, where: str) -> ExamQuestion:
    gold = str(answer).strip().translate(str.maketrans("ＡＢＣＤ", "ABCD"))
    if gold not in LETTERS:
        raise UsageError(f"{where} has Answer {answer!r}; answers must be one of A, B, C, D")
    if not str(subject).strip():
        raise UsageError(f"{where} has an empty Subject; give every question a subject (or use a folder of per-subject CSVs)")
    return ExamQuestion(content_id(question, options.values()), subject, question, options, gold)


def _from_frame(frame, path: Path, subject: str | None) -> list[ExamQuestion]:
    out = []
    for index, row in zip(frame.index, frame.to_dict("records")):
        options = {k: row[k] for k in LETTERS}
        out.append(_question(subject if subject is not None else row["Subject"], row["Question"], options, row["Answer"],
                             f"{path.name} row {index}"))
    return out


# Seed 001's alpaca rows: "Question: ...\nA.text\nB.text\nC.text\nD.text" and "The right option is X."
_ALPACA_OPTION = re.compile(r"^([A-D])[.．、]\s?(.*)$")
_ALPACA_ANSWER = re.compile(r"right option is\s*([A-D])")
_ALPACA_SUBJECT = re.compile(r"question about (.+?), the correct answer")


def _is_math(path: Path) -> bool:
    """A JSONL whose first row has problem/solution (seed 003) or question/answer is math, not alpaca."""
    for line in read_text(path, "data").splitlines():
        if line.strip():
            try:
                row = json.loads(line)
            except ValueError:
                return False
            return isinstance(row, dict) and ({"problem", "solution"} <= set(row) or {"question", "answer"} <= set(row))
    return False


def _from_alpaca(path: Path) -> list[ExamQuestion]:
    text = read_text(path, "data")
    try:
        rows = json.loads(text) if path.suffix.lower() == ".json" and text.lstrip().startswith("[") else \
            [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as exc:
        raise UsageError(f"{path} is not JSON or JSON Lines ({exc}); give alpaca rows with instruction, input, output") from None
    out = []
    for n, row in enumerate(rows, 1):
        where = f"{path.name} row {n}"
        if not isinstance(row, dict) or not {"instruction", "input", "output"} <= set(row):
            raise UsageError(f"{where} lacks instruction, input or output; alpaca rows need all three")
        lines = str(row["input"]).split("\n")
        found = {m.group(1): m.group(2) for m in map(_ALPACA_OPTION.match, lines) if m}
        answer = _ALPACA_ANSWER.search(str(row["output"]))
        if set(found) != set(LETTERS) or not answer:
            raise UsageError(f"{where} is not a multiple-choice row in seed 001's form (input lines 'A.…' to 'D.…' and "
                             f"output 'The right option is X.'); llmlab fine-tunes on A-D exams")
        stem = "\n".join(line for line in lines if not _ALPACA_OPTION.match(line))
        stem = stem[len("Question: "):] if stem.startswith("Question: ") else stem
        subject = _ALPACA_SUBJECT.search(str(row["instruction"]))
        out.append(_question(subject.group(1) if subject else "alpaca", stem.rstrip(), found, answer.group(1), where))
    return out


PASSAGE_KEYS = ("problem", "passage", "context")


def _is_passages(path: Path) -> bool:
    """A JSONL whose first row holds a list of `questions` is seed 002's shape: a passage and its sub-questions."""
    for line in read_text(path, "data").splitlines():
        if line.strip():
            try:
                row = json.loads(line)
            except ValueError:
                return False
            return isinstance(row, dict) and isinstance(row.get("questions"), list)
    return False


def _from_passages(path: Path) -> list[ExamQuestion]:
    """Seed 002's records: {"id", "problem" (the passage), "questions": [{"question", "options": [4], "answer"}]};
    each sub-question becomes its own question, with id `record#k` (k from 1) and the record as its group."""
    out, seen = [], set()
    for number, line in enumerate(read_text(path, "data").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{where} is not JSON ({exc}); one record per line") from None
        subs = record.get("questions") if isinstance(record, dict) else None
        if not isinstance(subs, list) or not subs:
            raise UsageError(f"{where} has no list of questions; each record holds a passage and its questions")
        rid = str(record.get("id", number))
        if rid in seen:
            raise UsageError(f"{where}: duplicate record id {rid!r}")
        seen.add(rid)
        passage = next((str(record[k]) for k in PASSAGE_KEYS if record.get(k)), "")
        subject = str(record.get("subject") or "passages")
        for k, sub in enumerate(subs, 1):
            options = sub.get("options") if isinstance(sub, dict) else None
            if isinstance(options, dict):
                options = [options.get(letter) for letter in LETTERS]
            if not isinstance(options, list) or len(options) != 4 or any(o is None for o in options):
                raise UsageError(f"{where} question {k} has {len(options) if isinstance(options, list) else 'no'} "
                                 f"options; llmlab fine-tunes on questions with four (A-D)")
            q = _question(subject, str(sub.get("question", "")), dict(zip(LETTERS, map(str, options))),
                          sub.get("answer", ""), f"{where} question {k}")
            out.append(replace(q, question_id=f"{rid}#{k}", group=rid, passage=passage))
    return out


def load_questions(data: str | Path) -> tuple[list[ExamQuestion], str]:
    """(questions in source order, what was read), or one UsageError saying what is wrong.

    A-D exams give ExamQuestions; a math JSONL (problem/solution) gives core.math MathQuestions,
    which split the same way (one subject, "math") and have no options to shuffle.
    """
    from core.mmmlu import load_csv

    path = Path(data).expanduser()
    if not path.exists():
        raise UsageError(f"data {path} does not exist; pass an exam CSV, a folder of per-subject CSVs, "
                         f"an alpaca .json/.jsonl, or use --demo")
    if path.is_dir():
        files = sorted(path.glob("*.csv"))
        if not files:
            raise UsageError(f"{path} is a folder without .csv files; a CMMLU-style folder holds one CSV per subject")
        questions = []
        for file in files:
            questions += _from_frame(load_csv(file, FINETUNE_COLUMNS), file, file.stem)
        source = f"{path} ({len(files)} per-subject CSVs)"
    elif path.suffix.lower() == ".csv":
        frame = load_csv(path, FINETUNE_COLUMNS)
        if "Subject" not in frame.columns:
            raise UsageError(f"{path} has no Subject column; add one, or put one CSV per subject in a folder "
                             f"(the file name is the subject)")
        questions = _from_frame(frame, path, None)
        source = str(path)
    elif path.suffix.lower() == ".jsonl" and _is_passages(path):
        questions, source = _from_passages(path), f"{path} (passages and sub-questions)"
    elif path.suffix.lower() == ".jsonl" and _is_math(path):
        from core.qa.math import load_math

        questions, source = load_math(path), f"{path} (math)"
    elif path.suffix.lower() in (".json", ".jsonl"):
        questions, source = _from_alpaca(path), f"{path} (alpaca)"
    else:
        raise UsageError(f"cannot read {path.name}: use an exam .csv, a folder of per-subject CSVs, or alpaca .json/.jsonl")
    if not questions:
        raise UsageError(f"{path} holds no questions")
    return questions, source


@dataclass
class Splits:
    train: list[ExamQuestion]
    val: list[ExamQuestion]
    test: list[ExamQuestion]
    notes: list[str]

    def sizes(self) -> dict:
        return {"train_questions": len(self.train), "val": len(self.val), "test": len(self.test)}


def _unique(questions: list[ExamQuestion]) -> dict[str, list[ExamQuestion]]:
    """Questions grouped by what a split keeps whole: a question repeated anywhere in the source (by content) is one
    question, and the sub-questions of one passage (seed 002) are one group; a group stays in one split."""
    groups: dict[str, list[ExamQuestion]] = {}
    for q in questions:
        groups.setdefault(unit_of(q), []).append(q)
    return groups


def split_per_subject(questions: list[ExamQuestion], val_per_subject: int, test_per_subject: int, seed: int) -> Splits:
    """Per subject, after a seeded shuffle of its questions: the first N for val, the next N for test, the rest train."""
    groups, rng, notes = _unique(questions), random.Random(seed), []
    by_subject: dict[str, list[str]] = {}
    for qid, copies in groups.items():
        by_subject.setdefault(copies[0].subject, []).append(qid)
    train, val, test = [], [], []
    for subject, ids in by_subject.items():
        rng.shuffle(ids)
        n_val = min(val_per_subject, len(ids))
        n_test = min(test_per_subject, len(ids) - n_val)
        if n_val < val_per_subject or n_test < test_per_subject:
            notes.append(f"subject {subject} has {len(ids)} questions, fewer than --val-per-subject {val_per_subject} + "
                         f"--test-per-subject {test_per_subject}: {n_val} val, {n_test} test, {len(ids) - n_val - n_test} train")
        for part, chosen in ((val, ids[:n_val]), (test, ids[n_val:n_val + n_test]), (train, ids[n_val + n_test:])):
            part += [q for qid in chosen for q in groups[qid]]
    return Splits(train, val, test, notes)


def split_by_subject(questions: list[ExamQuestion], val_fraction: float, test_fraction: float, seed: int) -> Splits:
    """Whole subjects held out: a seeded shuffle of the subjects, the first share for val, the next for test."""
    subjects = list(dict.fromkeys(q.subject for q in questions))
    if len(subjects) < 3:
        raise UsageError(f"--split-by subject needs at least 3 subjects (train, val, test); the data has {len(subjects)}: "
                         f"use --split-by question")
    random.Random(seed).shuffle(subjects)
    n_val = max(1, round(val_fraction * len(subjects))) if val_fraction > 0 else 0
    n_test = max(1, round(test_fraction * len(subjects))) if test_fraction > 0 else 0
    if n_val + n_test >= len(subjects):
        raise UsageError(f"--val-fraction {val_fraction} and --test-fraction {test_fraction} leave no subject to train on "
                         f"({len(subjects)} subjects)")
    val_s, test_s = set(subjects[:n_val]), set(subjects[n_val:n_val + n_test])
    pick = lambda chosen: [q for q in questions if q.subject in chosen]  # noqa: E731
    test = pick(test_s)
    held = {identity(q) for q in test}
    val = [q for q in pick(val_s) if identity(q) not in held]  # a question also held out for test stays in test only
    held |= {identity(q) for q in val}
    train = [q for q in questions if q.subject not in val_s | test_s]
    kept = [q for q in train if identity(q) not in held]
    notes = [f"{len(train) - len(kept)} training rows repeat a question of a held-out subject; they are left out of "
             f"training"] if len(kept) < len(train) else []
    return Splits(kept, val, test, notes)


def shuffle_copies(question: ExamQuestion, copies: int, rng: random.Random) -> list[ExamQuestion]:
    """The question as given plus copies-1 distinct permutations of its options (seed 001's augmentation)."""
    others = [p for p in itertools.permutations(LETTERS) if p != LETTERS]
    return [question] + [question.shuffled(order) for order in rng.sample(others, copies - 1)]


def leaked_ids(splits: Splits, key=None) -> set[str]:
    """Questions (by content; with `key`, groups) found in more than one split (must be empty)."""
    key = key or identity
    ids = [{key(q) for q in part} for part in (splits.train, splits.val, splits.test)]
    return (ids[0] & ids[1]) | (ids[0] & ids[2]) | (ids[1] & ids[2])


def leaked_groups(splits: Splits) -> set[str]:
    """Seed 002's records with sub-questions in more than one split (must be empty)."""
    return leaked_ids(splits, unit_of)


def write_split(path: Path, rows: list[dict]) -> None:
    from core.runs import write_jsonl

    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(path, rows)


def example_row(q: ExamQuestion, prompt: str, target: str) -> dict:
    """One line of data/<split>.jsonl: enough to check by hand that a copy points at the right answer."""
    row = asdict(q)
    return {**row, "prompt": prompt, "target": target}
