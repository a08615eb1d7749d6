"""The numeric answer of a math reply: the last number written, read exactly, and a tolerant comparison.

Numbers come back as Fractions so "0.1" stays exactly one tenth and "-42.35" compares equal to
the gold "-42.35" without float noise. Standard library only.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

# One number, in pieces (ASCII digits only: [0-9], not \d, because \d also matches full-width
# "１２" and other scripts' digits, which are left alone):
#   sign      "-", "+" or U+2212 "−", counted only when no ASCII letter/digit/")"/"]" stands right
#             before it; there it is an operator, so "5-3" reads 5 then 3, while "= -42.35",
#             "x=-5" and "答案是-5" keep the minus.
#   unsigned  digits with commas between groups of exactly three ("1,234,567"), the lookahead
#             refusing a fourth digit so "1,2345" is 1 then 2345 and "1,2" is 1 then 2; or plain
#             digits; then an optional decimal part that needs a digit after the dot, so the
#             full stop in "is 42." is not a decimal point. ".5" alone is a number too, unless a
#             digit comes just before the dot ("1.2.3" is 1.2 then 3, not 1.2 then 0.3).
#   tail      either "/" and a second unsigned number (a fraction, "3/4", "-7/2") or an exponent
#             ("1.2e3", "4E-2"). A "%" after the number is not part of it: "50%" reads 50.
_UNSIGNED = r"(?:(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.[0-9]+)?|(?<![0-9])\.[0-9]+)"
_NUMBER = re.compile(
    rf"(?P<sign>(?<![0-9A-Za-z)\]])[-+\u2212])?(?P<num>{_UNSIGNED})(?:/(?P<den>{_UNSIGNED})|(?P<exp>[eE][-+]?[0-9]+))?"
)

# Past this exponent a Fraction would build a huge integer (10**exponent) for a value that no
# float can hold anyway, so such numbers are returned as floats (inf or 0.0).
_MAX_EXACT_EXPONENT = 400


def _value(text: str) -> Fraction | float:
    """A Fraction for a sign/digits/decimal/exponent string (commas already removed)."""
    try:
        return Fraction(text)
    except ValueError:  # more digits than Python's int-from-string limit (4300)
        return float(text)


def _parse(match: re.Match) -> Fraction | float | None:
    """The value of one regex match, or None for a fraction over zero ("3/0" is not a number)."""
    negative = match.group("sign") in ("-", "\u2212")
    number = match.group("num").replace(",", "")
    if match.group("den") is not None:
        numerator = _value(number)
        denominator = _value(match.group("den").replace(",", ""))
        if denominator == 0:
            return None
        value = numerator / denominator
    else:
        exponent = match.group("exp") or ""
        if exponent and abs(int(exponent[1:])) > _MAX_EXACT_EXPONENT:
            value = float(number + exponent)
        else:
            value = _value(number + exponent)
    return -value if negative else value


def last_number(text: str) -> Fraction | float | None:
    """The last number in `text`, or None if it has none.

    Exact Fraction in practice; a float only for exponents past ±400 or more than 4300 digits.
    A fraction with a zero denominator is skipped, so the number before it may be the answer.
    """
    for match in reversed(list(_NUMBER.finditer(text))):
        value = _parse(match)
        if value is not None:
            return value
    return None


def same_number(a: Fraction | float | int | None, b: Fraction | float | int | None, rel_tol: float = 1e-6) -> bool:
    """Whether two answers agree to a relative tolerance; None (no answer) never matches.

    abs_tol stays 0 so small answers are not all "equal"; exact equality is checked first, which
    makes 0 and 0.0 match and needs no float conversion for identical huge Fractions.
    """
    if a is None or b is None:
        return False
    if a == b:
        return True
    try:
        return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=0.0)
    except OverflowError:
        # A Fraction beyond float range: compare exactly, by the same rule isclose applies.
        if any(isinstance(x, float) and not math.isfinite(x) for x in (a, b)):
            return False
        a, b = Fraction(a), Fraction(b)
        return abs(a - b) <= Fraction(rel_tol) * max(abs(a), abs(b))


def answer_of_solution(solution: str) -> Fraction | float | None:
    """The gold answer of a seed solution such as "-7.7 * 5.5 = -42.35": its last number."""
    return last_number(solution)
