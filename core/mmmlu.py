"""MMMLU data: the seed task's prompt, answer extraction, and CSV loading/selection.

Pure Python apart from pandas (imported when a CSV is read), so the app can call
`extract_answer` without pulling in torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import UsageError

COLUMNS = ("Question", "A", "B", "C", "D", "Answer", "Subject")
LETTERS = ("A", "B", "C", "D")

# The seed task fixes this template character for character (full-width brackets and colon
# in the last line, a trailing space); nothing is added around it, not even a chat template.
PROMPT_TEMPLATE = "问题: {Question}\nA) {A}\nB) {B}\nC) {C}\nD) {D}\n请你给出答案（只输出一个字母）: "


def build_prompt(row) -> str:
    """The seed-task prompt for one MMMLU row (a mapping with Question, A, B, C, D)."""
    return PROMPT_TEMPLATE.format(Question=row["Question"], A=row["A"], B=row["B"], C=row["C"], D=row["D"])


# --- answer extraction -------------------------------------------------------------------
# Only the start of the reply is judged: a base model keeps going and often writes its own
# "A) ... B) ..." lines, so searching the whole output would find a letter in almost every reply.

_FULL_WIDTH = str.maketrans("ＡＢＣＤ", "ABCD")
_LETTER = "[A-DＡ-Ｄ]"
# A Latin letter right after the candidate means it was the start of a word ("Because", "Do").
_LATIN = "A-Za-zＡ-Ｚａ-ｚ"
# Opening marks that may wrap the letter: (A) （A） [A] 【A】 **A** "A" 「A」 《A》
_OPENERS = r"\(\[（【\*\"'“‘「《<"
_LEADING = re.compile(rf"\s*[{_OPENERS}]*\s*({_LETTER})(?=([^{_LATIN}])|$)")
# Only the keyword ignores case: the letter must be a capital, so "the answer is a ..." is not A.
_EXPLICIT = re.compile(
    rf"(?:答案[\s*]*(?:是|为|应该是|应为)?[\s*]*[:：]?|\b(?i:answer)[\s*]*(?:(?i:is)[\s*]*)?[:：]?)\s*[{_OPENERS}]*\s*({_LETTER})(?=([^{_LATIN}])|$)"
)


def _first_line(text: str) -> tuple[str, bool]:
    """The first non-blank line of `text` and whether it is complete (a newline follows it)."""
    stripped = text.lstrip()
    end = stripped.find("\n")
    return (stripped, False) if end < 0 else (stripped[:end], True)


def answer_state(text: str) -> tuple[str | None, bool]:
    """(answer, settled): the answer the reply gives so far and whether more text could change it.

    Used by --stop-at-answer to end a row as soon as its answer can no longer change; a letter at
    the very end is not settled yet, because "A" may still become "Answer: C".
    """
    match = _LEADING.match(text)
    if match:
        return match.group(1).translate(_FULL_WIDTH), match.group(2) is not None
    line, complete = _first_line(text)
    match = _EXPLICIT.search(line)
    if match:
        return match.group(1).translate(_FULL_WIDTH), match.group(2) is not None or complete
    return None, complete


def extract_answer(text: str) -> str | None:
    """"A"/"B"/"C"/"D" read from the start of a reply, or None.

    1. The first non-blank character, if it is A-D (full-width Ａ-Ｄ too), optionally wrapped
       as in `B)`, `(C)`, `（C）`, `**D**`, and not followed by a Latin letter (so "Because" is
       not B).
    2. Else an explicit `答案是 X` / `答案：X` / `Answer: X` in the first non-blank line.
    3. Else None.
    """
    return answer_state(text)[0]


# --- CSV loading and selection ------------------------------------------------------------


@dataclass
class Question:
    index: int | str  # the CSV's own (unnamed) index column, kept so results point at the source row
    subject: str
    question: str
    choices: dict[str, str]
    gold: str
    prompt: str


def _not_utf8_error(path: Path, exc: UnicodeDecodeError) -> UsageError:
    return UsageError(
        f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); convert it first, e.g. "
        f"`iconv -f GBK -t UTF-8 {path} > {path.stem}-utf8.csv`"
    )


def load_csv(path: str | Path, columns: tuple[str, ...] = COLUMNS):
    """Read an MMMLU-shaped CSV into a DataFrame of strings, exactly as written.

    Every field stays text (no NaN for "None"/"NA" answers, no number parsing, quoted commas,
    quotes and newlines preserved) and the unnamed first column becomes the index. `columns`
    are the ones it must have (a CMMLU per-subject file has no Subject column).
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"data file {path} does not exist; pass a local MMMLU CSV or --data openai/MMMLU")
    raw = path.read_bytes()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise UsageError(f"{path} is UTF-16 text; convert it first, e.g. "
                         f"`iconv -f UTF-16 -t UTF-8 {path} > {path.stem}-utf8.csv`")
    if b"\x00" in raw[:8192]:  # text in UTF-8 or a legacy encoding such as GBK never holds a NUL byte
        raise UsageError(f"{path} looks like a binary file, not a CSV; pass an MMMLU CSV (,{','.join(COLUMNS)})")
    try:
        # A strict decode first: pandas' C parser may report bad bytes late or vaguely.
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8_error(path, exc) from None
    try:
        frame = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{path} is not a readable CSV ({first}); expected columns ,{','.join(columns)}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UsageError(
            f"{path} lacks column(s) {', '.join(missing)}; an MMMLU CSV has an unnamed index column then "
            f"{','.join(columns)} (found: {', '.join(map(str, frame.columns))})"
        )
    first = frame.columns[0]
    if first not in COLUMNS:  # the unnamed index column ("Unnamed: 0" or "")
        frame = frame.set_index(first)
        frame.index.name = None
    return frame


def subjects(frame) -> list[str]:
    """Subjects present, in order of first appearance."""
    return list(dict.fromkeys(frame["Subject"].tolist()))


def select_questions(frame, subject: str = "moral_scenarios", limit: int | None = 100) -> tuple[list[Question], list[str]]:
    """Rows in file order, filtered by Subject ("all" keeps every subject), then the first `limit`.

    Returns the questions and warnings for the run log (e.g. fewer rows than --limit).
    """
    warnings: list[str] = []
    if subject != "all":
        present = subjects(frame)
        if subject not in present:
            shown = ", ".join(present[:60]) + (" ..." if len(present) > 60 else "")
            raise UsageError(f"subject {subject!r} is not in the data; use --subject all or one of: {shown}")
        frame = frame[frame["Subject"] == subject]
    if limit is not None:
        if limit < 1:
            raise UsageError(f"--limit must be at least 1 (got {limit})")
        if limit > len(frame):
            warnings.append(f"--limit {limit} is more than the {len(frame)} questions available; using all {len(frame)}")
        frame = frame.iloc[:limit]
    questions = []
    for index, row in zip(frame.index, frame.to_dict("records")):
        gold = row["Answer"].strip().translate(_FULL_WIDTH)
        if gold not in LETTERS:
            raise UsageError(f"row {index} has Answer {row['Answer']!r}; answers must be one of A, B, C, D")
        questions.append(
            Question(
                index=_plain_index(index),
                subject=row["Subject"],
                question=row["Question"],
                choices={k: row[k] for k in LETTERS},
                gold=gold,
                prompt=build_prompt(row),
            )
        )
    if not questions:
        raise UsageError("no questions selected; check --subject and --limit")
    return questions, warnings


def _plain_index(value):
    """The CSV index as an int when it is one, so results.jsonl has 0, 1, 2 rather than "0"."""
    text = str(value)
    return int(text) if text.isdigit() else text
