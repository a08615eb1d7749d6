"""Short, fixed-width text for numbers the app shows: durations, rates, sizes, percentages."""

from __future__ import annotations

import math
from datetime import datetime


def duration(seconds: float | None) -> str:
    """`1:02:03`, `3:05` or `0:07`; a dash when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def rate(per_second: float | None, unit: str = "tok/s") -> str:
    """`812 tok/s`, `12.3k tok/s`, `1.2M tok/s`; a dash when unknown."""
    if per_second is None or not math.isfinite(per_second):
        return "-"
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if per_second >= scale:
            return f"{per_second / scale:.1f}{suffix} {unit}"
    return f"{per_second:.0f} {unit}"


def gib(mib: float | None) -> str:
    """A MiB figure as `12.3 GiB` (or `512 MiB` below one GiB)."""
    if mib is None:
        return "-"
    return f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"


def used_of(used_mib: float | None, total_mib: float | None) -> str:
    """`47.1/251.0 GiB`: both figures in the unit that suits the total (MiB, GiB or TiB)."""
    if used_mib is None or total_mib is None:
        return "-"
    for scale, unit, digits in ((2**20, "TiB", 2), (2**10, "GiB", 1), (1, "MiB", 0)):
        if total_mib >= scale or unit == "MiB":
            return f"{used_mib / scale:.{digits}f}/{total_mib / scale:.{digits}f} {unit}"
    return "-"


def percent(fraction: float | None, digits: int = 1) -> str:
    return "-" if fraction is None else f"{fraction * 100:.{digits}f}%"


def number(value: object) -> str:
    """Integers with thousands separators, floats to four significant digits."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def timestamp(unix: float | None) -> str:
    """Local date and time to the minute, as `2025-11-27 11:46`."""
    if unix is None:
        return "-"
    return datetime.fromtimestamp(unix).strftime("%Y-%m-%d %H:%M")


# How a run's status reads, everywhere the app shows one (tabs, the Runs table, run screens).
STATUS_STYLES = {
    "idle": "dim", "starting": "yellow", "running": "bold green", "stopping": "yellow",
    "completed": "bold green", "failed": "bold red", "stopped": "bold yellow",
}
