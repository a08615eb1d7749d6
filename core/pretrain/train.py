"""The training loop, readable in one screen, with every speed trick named where it happens.

Speed-ups (each switchable from PretrainConfig and reported in the summary only when active):
  - token blocks live on the device for the whole run: no DataLoader, no host->device copies;
  - bf16 autocast via accelerate (parameters stay fp32, no GradScaler needed) and TF32 matmuls;
  - fused AdamW: one kernel updates every parameter;
  - SDPA attention with no attention mask: blocks have no padding inside, so the causal fast path holds;
  - the loss is read back from the device only every `log_every` steps (the only host sync);
  - optional torch.compile (its compile time is part of train_seconds).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from core.pretrain.config import MODEL_PRESETS, PretrainConfig


@dataclass
class TrainResult:
    steps: int = 0
    epochs_done: int = 0
    final_loss: float | None = None
    eval_losses: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    stopped: bool = False
    optimizations: list[str] = field(default_factory=list)
    device: str = "cpu"
    peak_memory_mib: float | None = None


def build_model(cfg: PretrainConfig, vocab_size: int):
    """GPT-2 with random weights: GPT2Config() unchanged for `default`, a small preset for `tiny`."""
    from transformers import GPT2Config, GPT2LMHeadModel

    preset = dict(MODEL_PRESETS[cfg.model_size])
    if vocab_size != GPT2Config().vocab_size:
        preset["vocab_size"] = vocab_size  # only when the tokenizer is not GPT-2's own
    torch.manual_seed(cfg.seed)
    model = GPT2LMHeadModel(GPT2Config(**preset))
    # GPT2LMHeadModel's class name is not in transformers' loss table; naming the loss avoids a
    # logger call inside forward that breaks torch.compile(fullgraph=True).
    model.loss_type = "ForCausalLM"
    return model


def _param_groups(model, weight_decay: float) -> list[dict]:
    """Decay matrices (weights, embeddings) but not biases or LayerNorm gains."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def evaluate_loss(model, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, autocast) -> float | None:
    """Mean next-token loss over every real token of the held-out blocks."""
    if inputs.numel() == 0:
        return None
    model.eval()
    total = torch.zeros((), device=inputs.device)
    count = torch.zeros((), device=inputs.device)
    for i in range(0, inputs.shape[0], batch_size):
        x, y = inputs[i:i + batch_size], labels[i:i + batch_size]
        with autocast():
            loss = model(input_ids=x, labels=y, use_cache=False).loss
        n = (y[:, 1:] != -100).sum()
        total += loss.float() * n
        count += n
    model.train()
    return (total / count.clamp(min=1)).item()  # one sync per evaluation


def train(model, train_blocks, eval_blocks, cfg: PretrainConfig, emit: Callable[..., None],
          should_stop: Callable[[], bool] = lambda: False,
          on_step: Callable[[int, int], None] | None = None) -> TrainResult:
    """Train for cfg.epochs over `train_blocks` = (inputs, labels); emits loss/eval/heartbeat events."""
    from accelerate import Accelerator
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    result = TrainResult()
    cuda = torch.cuda.is_available()
    use_bf16 = cfg.bf16 and cuda and torch.cuda.is_bf16_supported()
    accelerator = Accelerator(mixed_precision="bf16" if use_bf16 else "no", cpu=not cuda)
    device = accelerator.device
    result.device = str(device)
    opts = result.optimizations
    opts.append("packed token blocks (no padding)")
    if cfg.token_cache:
        opts.append("token ids cached on disk")
    if use_bf16:
        opts.append("bf16 autocast (accelerate)")
    if cuda and cfg.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        opts.append("TF32 matmuls")
    opts.append(f"SDPA attention ({model.config._attn_implementation})")

    # The model is not passed through accelerator.prepare: on one device that would only add a
    # wrapper that casts logits back to fp32, one more full-vocabulary copy per step.
    model.to(device).train()
    inputs, labels = (t.to(device) for t in train_blocks)
    eval_inputs, eval_labels = (t.to(device) for t in eval_blocks)
    opts.append(f"data resident on {device.type}")

    try:
        optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95),
                                      fused=cfg.fused_adamw or None)
        if cfg.fused_adamw:
            opts.append("fused AdamW")
    except RuntimeError:  # fused kernels missing for this device
        optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95))
    n_blocks = inputs.shape[0]
    steps_per_epoch = math.ceil(n_blocks / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    scheduler = get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, num_warmup_steps=max(1, int(cfg.warmup_ratio * total_steps)),
        num_training_steps=total_steps, min_lr_rate=cfg.min_lr_ratio)

    forward = model
    if cfg.compile:
        forward = torch.compile(model)
        opts.append("torch.compile")
    opts.append(f"loss read back every {cfg.log_every} steps (no per-step host sync)")
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    valid_tokens = (labels[:, 1:] != -100).sum(dim=1)  # predicted tokens per block, for tokens/s
    loss_sum = torch.zeros((), device=device)
    tokens_since = torch.zeros((), dtype=torch.long, device=device)
    n_since, step, last_heartbeat = 0, 0, time.time()
    t_start = t_log = time.time()
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(n_blocks, device=device, generator=generator)
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            with accelerator.autocast():
                loss = forward(input_ids=inputs[idx], labels=labels[idx], use_cache=False).loss
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss_sum += loss.detach()
            tokens_since += valid_tokens[idx].sum()
            n_since += 1
            if on_step:
                on_step(step, total_steps)
            if step % cfg.log_every == 0 or i == steps_per_epoch - 1:
                mean_loss = (loss_sum / n_since).item()  # note: the host sync point, every log_every steps
                now = time.time()
                emit("loss", step=step, epoch=epoch, loss=round(mean_loss, 5), lr=scheduler.get_last_lr()[0],
                     tokens_per_s=round(tokens_since.item() / max(now - t_log, 1e-9), 1))
                result.final_loss = mean_loss
                loss_sum.zero_(), tokens_since.zero_()
                n_since, t_log = 0, now
            if time.time() - last_heartbeat > 5:
                emit("heartbeat", step=step)
                last_heartbeat = time.time()
            if should_stop():
                result.stopped = True
                break
        result.epochs_done = epoch if not result.stopped else epoch - 1
        if result.stopped:
            break
        eval_loss = evaluate_loss(model, eval_inputs, eval_labels, cfg.batch_size, accelerator.autocast)
        if eval_loss is not None:
            result.eval_losses.append(eval_loss)
            emit("eval", epoch=epoch, step=step, eval_loss=round(eval_loss, 5))
    if cuda:
        torch.cuda.synchronize()
        result.peak_memory_mib = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    result.train_seconds = time.time() - t_start
    result.steps = step
    return result
