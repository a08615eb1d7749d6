"""Optimizer set-up shared by the kinds that train: parameter groups, AdamW and the LR schedule.

The schedules are transformers' own: linear warm-up to the peak, then cosine decay to a floor,
linear decay, constant, or warm-up-stable-decay (WSD: flat at the peak, then a cosine decay over
the last share of the steps). This module only turns a run's options into their arguments, so the
loops and the tests agree on what the schedule is.
"""

from __future__ import annotations

SCHEDULES = ("cosine", "linear", "constant", "wsd")


def warmup_steps(warmup: float, total_steps: int) -> int:
    """`warmup` below 1 is a share of the steps, from 1 on a number of steps; at least one, so the
    first update never runs at the full peak rate."""
    steps = int(warmup) if warmup >= 1 else int(warmup * total_steps)
    return max(1, min(steps, total_steps))


def make_scheduler(optimizer, *, total_steps: int, warmup: float, min_lr_ratio: float, schedule: str = "cosine",
                   decay_share: float = 0.2):
    """The LR schedule `schedule` after `warmup` (a share or a number of steps), decaying to lr * min_lr_ratio."""
    import transformers as tf

    warm = warmup_steps(warmup, total_steps)
    if schedule == "cosine":
        return tf.get_cosine_with_min_lr_schedule_with_warmup(optimizer, num_warmup_steps=warm,
                                                              num_training_steps=total_steps, min_lr_rate=min_lr_ratio)
    if schedule == "linear":  # transformers' linear schedule decays to zero; the floor keeps it comparable
        return tf.get_polynomial_decay_schedule_with_warmup(optimizer, num_warmup_steps=warm, num_training_steps=total_steps,
                                                            lr_end=optimizer.defaults["lr"] * min_lr_ratio, power=1.0)
    if schedule == "constant":
        return tf.get_constant_schedule_with_warmup(optimizer, num_warmup_steps=warm)
    if schedule == "wsd":
        decay = max(1, int(decay_share * total_steps))
        return tf.get_wsd_schedule(optimizer, num_warmup_steps=warm, num_decay_steps=decay, num_training_steps=total_steps,
                                   min_lr_ratio=min_lr_ratio)
    raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


def param_groups(model, weight_decay: float) -> list[dict]:
    """Decay matrices (weights, embeddings) but not biases or LayerNorm gains; only trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def adamw(model, lr: float, weight_decay: float, fused: bool = True, betas=(0.9, 0.95)):
    """(AdamW over param_groups, whether it is the fused kernel). torch picks foreach, not fused,
    unless asked, and some devices have no fused kernel: then the plain one."""
    import torch

    if fused:
        try:
            return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, fused=True), True
        except RuntimeError:  # no fused kernel for this device
            pass
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas), False
