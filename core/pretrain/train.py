"""The training loop, with every speed trick named where it happens.

Speed-ups (each switchable from PretrainConfig and reported in the summary only when active):
  - token blocks live on the device for the whole run: no DataLoader, no host->device copies;
  - bf16 autocast via accelerate (parameters stay fp32, no GradScaler needed) and TF32 matmuls;
  - fused AdamW: one kernel updates every parameter, and it skips a step with a non-finite
    loss on the device (found_inf), so guarding against NaN costs no host sync;
  - SDPA attention with no attention mask: blocks have no padding inside, so the causal fast path holds;
  - the loss is read back from the device only every `log_every` steps (the only host sync);
  - optional torch.compile (its compile time is part of train_seconds).
Reliability: checkpoints (checkpoint.py), resume, clean stop on SIGINT/SIGTERM/SIGHUP, micro-batches
halved with doubled accumulation on out-of-memory (same effective batch).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from core.errors import OutOfMemory, UsageError
from core.pretrain.checkpoint import load_checkpoint, save_checkpoint
from core.pretrain.config import MODEL_PRESETS, PretrainConfig


@dataclass
class TrainResult:
    steps: int = 0
    epochs_done: int = 0
    final_loss: float | None = None
    eval_losses: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    stopped: bool = False
    error: str | None = None            # set when the run had to stop itself (non-finite losses)
    nonfinite_steps: int = 0            # updates skipped because the loss was NaN/inf
    tokens_trained: int = 0             # predicted tokens of the steps this process ran (not those before a resume)
    micro_batch_size: int = 0
    oom_retries: int = 0
    checkpoint: str | None = None       # the newest checkpoint written by this process
    optimizations: list[str] = field(default_factory=list)
    device: str = "cpu"
    peak_memory_mib: float | None = None


def build_model(cfg: PretrainConfig, vocab_size: int):
    """GPT-2 with random weights: GPT2Config() unchanged for `default`, a small preset for `tiny`."""
    from transformers import GPT2Config, GPT2LMHeadModel

    preset = {**MODEL_PRESETS[cfg.model_size], **cfg.model_overrides}
    if vocab_size != GPT2Config().vocab_size:
        preset["vocab_size"] = vocab_size  # only when the tokenizer is not GPT-2's own
    torch.manual_seed(cfg.seed)
    model = GPT2LMHeadModel(GPT2Config(**preset))
    # GPT2LMHeadModel's class name is not in transformers' loss table; naming the loss avoids a
    # logger call inside forward that breaks torch.compile(fullgraph=True).
    model.loss_type = "ForCausalLM"
    return model


def count_steps_per_epoch(n_blocks: int, batch_size: int) -> int:
    """Optimizer steps in one epoch: the last batch may be short, but it is a step (no block is dropped)."""
    return math.ceil(n_blocks / batch_size)


def _param_groups(model, weight_decay: float) -> list[dict]:
    """Decay matrices (weights, embeddings) but not biases or LayerNorm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


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


def _rng_state(generator: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "data": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(generator: torch.Generator, state: dict) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def train(model, train_blocks, eval_blocks, cfg: PretrainConfig, emit: Callable[..., None],
          should_stop: Callable[[], bool] = lambda: False, on_step: Callable[[int, int], None] | None = None,
          run_dir: Path | None = None, resume_from: Path | None = None) -> TrainResult:
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

    fused = False
    if cfg.fused_adamw:
        try:
            optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95), fused=True)
            fused = True
            opts.append("fused AdamW")
        except RuntimeError:  # no fused kernel for this device
            pass
    if not fused:
        optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95))
    n_blocks = inputs.shape[0]
    steps_per_epoch = count_steps_per_epoch(n_blocks, cfg.batch_size)
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
    step, first_epoch, start_index, order = 0, 1, 0, None
    if resume_from is not None:
        try:
            state = load_checkpoint(resume_from, model, optimizer, scheduler)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:  # damage checkpoint_problem() could not see
            raise UsageError(f"cannot resume from checkpoint {resume_from}: {str(exc).splitlines()[0]}") from None
        if state["order"] and len(state["order"]) != n_blocks:  # the final checkpoint's order is empty
            raise UsageError(f"checkpoint {resume_from.name} was made from {len(state['order'])} blocks of training "
                             f"tokens, but the data now gives {n_blocks}: the data or tokenizer changed since; start a new run")
        _set_rng_state(generator, state["rng"])
        step, first_epoch, start_index = state["step"], state["epoch"], state["next_index"]
        order = torch.tensor(state["order"], device=device)
        result.eval_losses = state["eval_losses"]
        emit("resume", step=step, epoch=first_epoch, checkpoint=str(resume_from))

    micro = cfg.micro_batch_size or cfg.batch_size
    valid_tokens = (labels[:, 1:] != -100).sum(dim=1)  # predicted tokens per block

    def forward_backward(idx: torch.Tensor) -> torch.Tensor:
        """Loss of one batch, in micro-batches weighted by their real tokens (exactly the full-batch mean)."""
        batch_tokens = valid_tokens[idx].sum()
        total = torch.zeros((), device=device)
        for chunk in idx.split(micro):
            with accelerator.autocast():
                loss = forward(input_ids=inputs[chunk], labels=labels[chunk], use_cache=False).loss
            weight = valid_tokens[chunk].sum() / batch_tokens
            (loss * weight).backward()
            total += loss.detach().float() * weight
        return total

    def checkpoint(epoch: int, next_index: int, order_now: torch.Tensor) -> None:
        state = {"step": step, "epoch": epoch, "next_index": next_index, "order": order_now.tolist(),
                 "eval_losses": result.eval_losses, "rng": _rng_state(generator)}
        path = save_checkpoint(run_dir, model, optimizer, scheduler, state)
        result.checkpoint = str(path)
        emit("checkpoint", step=step, path=str(path))

    # Device-side counters, read back only at log steps.
    loss_sum = torch.zeros((), device=device)
    n_finite = torch.zeros((), device=device)
    tokens_since = torch.zeros((), dtype=torch.long, device=device)
    bad_run = torch.zeros((), device=device)       # current run of non-finite losses
    bad_run_max = torch.zeros((), device=device)
    bad_total = torch.zeros((), device=device)
    t_start = t_log = last_heartbeat = last_save = time.time()
    result.epochs_done = first_epoch - 1
    for epoch in range(first_epoch, cfg.epochs + 1):
        if order is None:
            order = torch.randperm(n_blocks, device=device, generator=generator)
        i = start_index
        while i < steps_per_epoch and not result.stopped and result.error is None:
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            try:
                loss = forward_backward(idx)
            except torch.OutOfMemoryError:
                optimizer.zero_grad(set_to_none=True)
                if cuda:
                    torch.cuda.empty_cache()
                if micro == 1:
                    raise OutOfMemory("out of memory even with one sequence per micro-batch; "
                                      "lower --block-size or use a smaller --model-size") from None
                micro = max(1, micro // 2)
                result.oom_retries += 1
                emit("oom", step=step + 1, micro_batch_size=micro,
                     accumulation=math.ceil(cfg.batch_size / micro))
                continue  # the same batch again, in smaller pieces
            finite = torch.isfinite(loss)
            if cfg.grad_clip > 0:
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                finite &= torch.isfinite(grad_norm)  # a finite loss can still have inf/NaN gradients
            if fused:
                optimizer.found_inf = (~finite).float()  # the fused kernel skips the update on the device
                optimizer.step()
            elif bool(finite):  # unfused optimizers cannot skip on the device: this one check syncs
                optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step, i = step + 1, i + 1
            loss_sum += torch.where(finite, loss, 0.0)
            n_finite += finite
            bad_run = (bad_run + 1) * ~finite
            bad_run_max = torch.maximum(bad_run_max, bad_run)
            bad_total += ~finite
            tokens_since += valid_tokens[idx].sum()
            if on_step:
                on_step(step, total_steps)
            result.stopped = should_stop()
            if step % cfg.log_every == 0 or i == steps_per_epoch or result.stopped:
                # note: the host sync point, every log_every steps
                mean_loss, finite_count, worst_run, ntok, nbad = torch.stack(
                    [loss_sum / n_finite.clamp(min=1), n_finite, bad_run_max, tokens_since.float(), bad_total]).tolist()
                now = time.time()
                result.nonfinite_steps = int(nbad)
                result.tokens_trained += int(ntok)
                if finite_count:
                    emit("loss", step=step, epoch=epoch, loss=round(mean_loss, 5), lr=scheduler.get_last_lr()[0],
                         tokens_per_s=round(ntok / max(now - t_log, 1e-9), 1))
                    result.final_loss = mean_loss
                if worst_run >= cfg.max_nonfinite:
                    result.error = (f"the loss was not finite for {int(worst_run)} steps in a row (step {step}); "
                                    f"lower --lr or check the data; the last good checkpoint is kept")
                    emit("log", message=result.error)
                loss_sum.zero_(), n_finite.zero_(), tokens_since.zero_(), bad_run_max.copy_(bad_run)
                t_log = now
            if time.time() - last_heartbeat > 5:
                emit("heartbeat", step=step)
                last_heartbeat = time.time()
            due = (cfg.save_every and step % cfg.save_every == 0) or \
                  (cfg.save_minutes and time.time() - last_save > 60 * cfg.save_minutes)
            if run_dir is not None and result.error is None and (due or result.stopped):
                checkpoint(epoch, i, order)
                last_save = time.time()
        if result.stopped or result.error:
            break
        order, start_index = None, 0
        result.epochs_done = epoch
        eval_loss = evaluate_loss(model, eval_inputs, eval_labels, micro, accelerator.autocast)
        if eval_loss is not None:
            result.eval_losses.append(eval_loss)
            emit("eval", epoch=epoch, step=step, eval_loss=round(eval_loss, 5))
        t_log = time.time()  # the next interval's tokens/s measures training, not this evaluation
    finished = not (result.stopped or result.error)
    if run_dir is not None and cfg.save_every and finished and not (result.checkpoint or "").endswith(f"step-{step:06d}"):
        checkpoint(cfg.epochs + 1, 0, torch.zeros(0, dtype=torch.long))  # "at the end": nothing left to do
    if cuda:
        torch.cuda.synchronize()
        result.peak_memory_mib = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    if result.oom_retries:
        opts.append(f"micro-batches of {micro} after {result.oom_retries} out-of-memory retries")
    result.micro_batch_size = micro
    result.train_seconds = time.time() - t_start
    result.steps = step
    return result
