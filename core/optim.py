"""Optimizer set-up shared by the kinds that train: parameter groups, AdamW, Muon with AdamW, and the LR schedule.

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


OPTIMIZERS = ("adamw", "muon")


def muon_groups(model) -> tuple[list, list]:
    """(the hidden 2-D matrices Muon updates, everything else, for AdamW).

    Muon orthogonalizes a matrix's update, which suits the attention and MLP weights of the blocks; the
    token and position embeddings (and the output layer tied to them), the LayerNorm gains and the
    biases are not such matrices and stay with AdamW, as in Keller Jordan's and modded-nanogpt's recipes.
    """
    import torch

    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if output is not None:
        embeddings.add(id(output.weight))
    matrices, rest = [], []
    for p in model.parameters():
        if p.requires_grad:
            (matrices if p.dim() == 2 and id(p) not in embeddings else rest).append(p)
    return matrices, rest


def _fp32_newton_schulz_on_cpu() -> None:
    """Make torch's Muon orthogonalize CPU gradients in fp32.

    Why by hand: torch.optim.Muon (torch 2.9-2.13) runs its Newton-Schulz iteration in bf16, which
    suits a GPU; a CPU without bf16 matrix units runs that matmul 45x slower than in fp32 (a
    256 x 1024 matrix, five iterations: 1.12 s against 0.025 s on this project's CPU), and the mid
    preset's Muon steps took ~10 s instead of ~1.5 s. The same quintic iteration, with the
    coefficients torch passes, runs here in fp32 for CPU tensors; CUDA tensors keep torch's own.
    """
    import torch
    import torch.optim._muon as muon

    original = getattr(muon, "_zeropower_via_newtonschulz", None)
    if original is None or getattr(original, "fp32_on_cpu", False):
        return

    def zeropower(grad, ns_coefficients, ns_steps, eps):
        if grad.device.type != "cpu" or grad.dim() != 2:
            return original(grad, ns_coefficients, ns_steps, eps)
        a, b, c = ns_coefficients
        tall = grad.size(0) > grad.size(1)
        x = grad.float().T if tall else grad.float()
        x = x / x.norm().clamp(min=eps)  # spectral norm at most 1
        for _ in range(ns_steps):
            gram = x @ x.T
            x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
        return x.T if tall else x

    zeropower.fp32_on_cpu, zeropower.torch_own = True, original
    muon._zeropower_via_newtonschulz = zeropower


def muon_with_adamw(model, lr: float, weight_decay: float, betas=(0.9, 0.95)):
    """torch's Muon on the hidden matrices and AdamW on the rest, driven as one torch Optimizer.

    Written by hand because torch has both optimizers but no way to run them as one: the LR
    schedule, the gradient clip and the checkpoint each want a single Optimizer. Its param groups
    are the two inner optimizers' own group dicts, so the scheduler's lr reaches both; `step`,
    `state_dict` and `load_state_dict` act on both. `adjust_lr_fn="match_rms_adamw"` scales Muon's
    update to AdamW's RMS (0.2·sqrt(max(rows, cols)), the same whichever way a matrix is stored:
    GPT-2's Conv1D keeps its weights as in × out), so one --lr serves both halves.
    """
    import torch

    _fp32_newton_schulz_on_cpu()

    class MuonWithAdamW(torch.optim.Optimizer):
        def __init__(self) -> None:
            matrices, rest = muon_groups(model)
            self.muon = torch.optim.Muon(matrices, lr=lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw")
            self.adamw = torch.optim.AdamW(
                [{"params": [p for p in rest if p.dim() >= 2], "weight_decay": weight_decay},
                 {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0}], lr=lr, betas=betas)
            super().__init__(matrices + rest, {"lr": lr})
            self.param_groups = self.muon.param_groups + self.adamw.param_groups

        @torch.no_grad()
        def step(self, closure=None):
            self.muon.step()
            self.adamw.step()

        def state_dict(self) -> dict:
            return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

        def load_state_dict(self, state_dict: dict) -> None:
            self.muon.load_state_dict(state_dict["muon"])
            self.adamw.load_state_dict(state_dict["adamw"])
            # loading rebuilds each inner group dict: the scheduler must see (and set lr on) the new ones
            self.param_groups = self.muon.param_groups + self.adamw.param_groups

    return MuonWithAdamW()


def make_optimizer(model, name: str, lr: float, weight_decay: float, fused: bool = True, betas=(0.9, 0.95)):
    """(the optimizer `name` names, whether it skips a non-finite step on the device itself)."""
    if name == "muon":
        return muon_with_adamw(model, lr, weight_decay, betas), False  # no device-side skip: the loop checks `finite`
    if name == "adamw":
        return adamw(model, lr, weight_decay, fused=fused, betas=betas)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
