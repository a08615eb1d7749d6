"""Majority vote across runs that answered the same multiple-choice questions.

Several runs (models, seeds, prompts) each give a letter or None per question; the vote is
usually more accurate than any single run, and ties go to the run that scored best alone.
"""

from __future__ import annotations

from collections import Counter
from typing import Hashable, Sequence, TypeVar

Key = TypeVar("Key", bound=Hashable)


def _shared_keys(predictions: Sequence[dict[Key, str | None]]) -> list[Key]:
    """The question keys, in the first run's order, after checking every run has exactly those."""
    if not predictions:
        raise ValueError("no runs to vote over; pass the predictions of at least one run")
    keys = list(predictions[0])
    expected = set(keys)
    for index, run in enumerate(predictions[1:], 2):
        differ = expected ^ set(run)
        if differ:
            raise ValueError(f"run {index} of {len(predictions)} differs from run 1 in {len(differ)} question key(s); "
                             "every run must answer the same questions")
    return keys


def tally(predictions: Sequence[dict[Key, str | None]]) -> dict[Key, Counter]:
    """Per question, how many runs gave each answer (None is no answer and not counted).

    For reports such as "B 3, C 1"; raises ValueError as `vote` does when the runs' keys differ.
    """
    keys = _shared_keys(predictions)
    return {key: Counter(run[key] for run in predictions if run[key] is not None) for key in keys}


def vote(predictions: Sequence[dict[Key, str | None]], accuracies: Sequence[float]) -> dict[Key, str | None]:
    """The majority answer per question across runs; None where no run answered.

    predictions[i] maps each question key to run i's answer (e.g. "A".."D") or None, and
    accuracies[i] is run i's own accuracy. A tie between answers goes to the tied answer of the
    most accurate run among those that gave one of them; equal accuracy, the earlier run.
    """
    if len(accuracies) != len(predictions):
        raise ValueError(f"got {len(predictions)} runs but {len(accuracies)} accuracies; pass one accuracy per run")
    result: dict[Key, str | None] = {}
    for key, counts in tally(predictions).items():
        if not counts:
            result[key] = None
            continue
        top = max(counts.values())
        tied = {answer for answer, count in counts.items() if count == top}
        if len(tied) == 1:
            result[key] = next(iter(tied))
            continue
        # Highest accuracy first, then the lowest index: min over (-accuracy, index).
        best = min((i for i, run in enumerate(predictions) if run[key] in tied), key=lambda i: (-accuracies[i], i))
        result[key] = predictions[best][key]
    return result
