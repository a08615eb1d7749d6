"""Optimizer set-up shared by the kinds that train: parameter groups, AdamW and the LR schedule.

The schedule is transformers' own (linear warm-up to the peak, then cosine decay to a floor);
this module only turns a run's options into its arguments, so the loops and the tests agree.
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
