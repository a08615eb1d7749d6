"""The learning-rate schedule: linear warm-up to the peak, then cosine decay to a floor.

transformers' own schedule is used rather than a hand-written one; this module only turns the
run's options into its arguments, so the loop and the tests agree on what the schedule is.
"""

from __future__ import annotations


def warmup_steps(warmup_ratio: float, total_steps: int) -> int:
    """At least one warm-up step, so the first update never runs at the full peak rate."""
    return max(1, int(warmup_ratio * total_steps))


def make_scheduler(optimizer, *, total_steps: int, warmup_ratio: float, min_lr_ratio: float):
    """Warm up linearly over `warmup_ratio` of the steps, then follow a cosine down to lr * min_lr_ratio."""
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    return get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, num_warmup_steps=warmup_steps(warmup_ratio, total_steps),
        num_training_steps=total_steps, min_lr_rate=min_lr_ratio)
