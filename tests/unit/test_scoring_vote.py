"""Majority vote across runs: counting, ignoring non-answers, and breaking ties by accuracy then order."""

from __future__ import annotations

from collections import Counter

import pytest

from core.scoring.vote import tally, vote


def test_simple_majority():
    runs = [{"q1": "A", "q2": "C"}, {"q1": "A", "q2": "D"}, {"q1": "B", "q2": "D"}]
    assert vote(runs, [0.5, 0.5, 0.9]) == {"q1": "A", "q2": "D"}


def test_none_casts_no_vote():
    # Two runs gave no answer; the single "C" wins over nothing, and None is never the winner.
    runs = [{"q": None}, {"q": "C"}, {"q": None}]
    assert vote(runs, [0.9, 0.1, 0.9]) == {"q": "C"}
    runs = [{"q": None}, {"q": None}, {"q": "B"}, {"q": "B"}, {"q": "A"}]
    assert vote(runs, [0.2] * 5) == {"q": "B"}


def test_all_none_gives_none():
    assert vote([{"q": None}, {"q": None}], [0.3, 0.4]) == {"q": None}


def test_tie_goes_to_the_more_accurate_run():
    runs = [{"q": "A"}, {"q": "B"}, {"q": "B"}, {"q": "A"}, {"q": "C"}]
    # A and B tie at 2; the best run among those voting A or B is run 3 (0.8), which said A.
    # Run 4 (0.95) said C, which is not tied, so it does not decide.
    assert vote(runs, [0.4, 0.6, 0.7, 0.8, 0.95]) == {"q": "A"}
    assert vote(runs, [0.4, 0.9, 0.7, 0.8, 0.95]) == {"q": "B"}


def test_tie_with_equal_accuracy_goes_to_the_first_run():
    runs = [{"q": "D"}, {"q": "B"}]
    assert vote(runs, [0.5, 0.5]) == {"q": "D"}
    assert vote(runs[::-1], [0.5, 0.5]) == {"q": "B"}
    # The first run answered nothing: the first run that voted for a tied answer decides.
    runs = [{"q": None}, {"q": "C"}, {"q": "A"}]
    assert vote(runs, [0.9, 0.5, 0.5]) == {"q": "C"}


def test_result_keeps_the_first_runs_key_order():
    runs = [{"b": "A", "a": "B"}, {"a": "B", "b": "A"}]
    assert list(vote(runs, [0.1, 0.2])) == ["b", "a"]


def test_keys_can_be_any_hashable():
    runs = [{("mmmlu", 1): "A", 7: "B"}, {("mmmlu", 1): "C", 7: "B"}, {("mmmlu", 1): "C", 7: None}]
    assert vote(runs, [0.1, 0.2, 0.3]) == {("mmmlu", 1): "C", 7: "B"}


def test_mismatched_key_sets():
    runs = [{"q1": "A", "q2": "B"}, {"q1": "A", "q2": "B"}, {"q1": "A", "q3": "B", "q4": "C"}]
    with pytest.raises(ValueError) as exc:
        vote(runs, [0.1, 0.2, 0.3])
    # Run 3 lacks q2 and has q3 and q4 besides: 3 keys differ.
    assert "run 3 of 3 differs from run 1 in 3 question key(s)" in str(exc.value)
    with pytest.raises(ValueError, match="differs from run 1 in 1 question key"):
        tally([{"q1": "A"}, {}])


def test_bad_arguments():
    with pytest.raises(ValueError, match="no runs to vote over"):
        vote([], [])
    with pytest.raises(ValueError, match="got 2 runs but 1 accuracies"):
        vote([{"q": "A"}, {"q": "B"}], [0.5])


def test_tally_counts_per_question():
    runs = [{"q1": "A", "q2": None}, {"q1": "B", "q2": None}, {"q1": "A", "q2": None}]
    counts = tally(runs)
    assert counts == {"q1": Counter({"A": 2, "B": 1}), "q2": Counter()}
    assert counts["q1"].most_common(1) == [("A", 2)]
