"""Reading the numeric answer of a math reply: the last number, exactly, and comparing two answers."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from core.scoring.numbers import answer_of_solution, last_number, same_number


@pytest.mark.parametrize(
    "text, expected",
    [
        ("-7.7 * 5.5 = -42.35", Fraction("-42.35")),
        ("\u22123", Fraction(-3)),  # U+2212 MINUS SIGN
        ("x = \u22124.5", Fraction("-4.5")),
        ("1,234.5", Fraction("1234.5")),
        ("1,234", Fraction(1234)),
        ("1,234,567.5", Fraction("1234567.5")),
        ("1,2", Fraction(2)),  # not a thousands separator: two numbers, 1 and 2
        ("1,2345", Fraction(2345)),  # a group of four digits is no thousands group either
        ("1.2e3", Fraction(1200)),
        ("4E-2", Fraction(1, 25)),
        ("3/4", Fraction(3, 4)),
        ("-7/2", Fraction(-7, 2)),
        ("1.5/2", Fraction(3, 4)),
        ("50%", Fraction(50)),
        ("The answer is 42.", Fraction(42)),
        ("The answer is 42.5.", Fraction("42.5")),
        ("计算 12 + 30 等于 42。", Fraction(42)),
        ("答案是-5", Fraction(-5)),  # a CJK character before the sign: still a minus
        ("+5", Fraction(5)),
        ("5-3", Fraction(3)),  # an operator between digits, not the sign of 3
        ("x=-5", Fraction(-5)),
        ("costs .5 dollars", Fraction(1, 2)),
        ("0.1", Fraction(1, 10)),  # exact, not the float 0.1000000000000000055...
        ("3/0", None),
        ("1/2 then 3/0", Fraction(1, 2)),  # a zero denominator is skipped, not read as 3 or 0
        ("no number here", None),
        ("", None),
        ("４２", None),  # full-width digits are not read
        ("42 and ４２", Fraction(42)),
    ],
)
def test_last_number(text, expected):
    value = last_number(text)
    assert value == expected
    if expected is not None:
        assert isinstance(value, Fraction)


def test_decimals_are_exact():
    assert last_number("0.1") + last_number("0.2") == Fraction(3, 10)


def test_huge_exponent_falls_back_to_float():
    assert last_number("1e500") == math.inf
    assert last_number("-1e500") == -math.inf


def test_answer_of_solution_is_the_last_number():
    assert answer_of_solution("-7.7 * 5.5 = -42.35") == Fraction("-42.35")
    assert answer_of_solution("3 + 4 = 7") == 7
    assert answer_of_solution("") is None


def test_same_number_tolerance():
    assert same_number(Fraction(1), 1 + 1e-7)  # 1e-7 relative difference is within 1e-6
    assert not same_number(Fraction(1), 1 + 1e-5)
    assert same_number(Fraction("-42.35"), -42.35)
    assert same_number(Fraction(100), 100.00001)  # relative: 1e-7 of 100
    assert not same_number(Fraction(1, 10**9), Fraction(2, 10**9))  # abs_tol 0: tiny values are not all equal
    assert same_number(Fraction(1), 1.001, rel_tol=1e-2)


def test_same_number_zero_and_none():
    assert same_number(0, 0.0)
    assert same_number(Fraction(0), -0.0)
    assert not same_number(0, 1e-12)
    assert not same_number(None, None)
    assert not same_number(None, 1)
    assert not same_number(Fraction(1), None)


def test_same_number_beyond_float_range():
    big = Fraction(10) ** 400
    assert same_number(big, big + 1)
    assert not same_number(big, 2 * big)
    assert not same_number(big, math.inf)
