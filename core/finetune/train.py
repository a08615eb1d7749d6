"""The LoRA training loop: loss on the target tokens only, val loss checks, the best adapter kept.

Examples are tokenized once (prompt tokens get label -100, so only the answer is learned; EOS
closes every target) and padded per batch on the right with an attention mask. Speed-ups:
the output layer runs on the target positions only (target_loss); and, named in the summary
only when active, bf16 autocast on a GPU with the frozen base in bf16, fused AdamW over the
adapter's parameters, gradient checkpointing as a memory switch, micro-batches halved on
out-of-memory (same effective batch).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from core.checkpoints import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from core.distributed import all_sum, any_rank, world
from core.errors import OutOfMemory, UsageError
from core.memory import OOM_ERRORS, HalvingSize
from core.optim import adamw, make_scheduler
from core.runlog import Checkpoint, EvalLoss, Log, Loss, MicroBatchHalved, Resume


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]          # -100 on the prompt: no loss there


def encode(tokenizer, rows: list[dict], max_length: int) -> tuple[list[Example], int]:
    """(examples, how many lost the start of their prompt to fit max_length); the target is never cut."""
    eos = tokenizer.eos_token_id
    prompts = tokenizer([r["prompt"] for r in rows], add_special_tokens=True)["input_ids"]
    targets = tokenizer([r["target"] for r in rows], add_special_tokens=False)["input_ids"]
    out, cut = [], 0
    for p, t in zip(prompts, targets):
        t = (t + [eos])[: max_length - 1]
        room = max_length - len(t)
        if len(p) > room:
            p, cut = p[len(p) - room:], cut + 1
        out.append(Example(p + t, [-100] * len(p) + t))
    return out, cut


def collate(examples: list[Example], pad_id: int, device) -> dict:
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n], labels[row, :n], mask[row, :n] = torch.tensor(e.input_ids), torch.tensor(e.labels), 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def target_loss(model, batch: dict):
    """Mean cross-entropy over the target tokens, with the output layer applied at those positions only.

    Why by hand: HF's `model(labels=...)` computes (and upcasts to fp32) logits for every prompt
    token too, though only the ~10 answer tokens of a ~150-token exam prompt carry loss; the output
    layer is a large share of a small model's compute (Qwen2.5-0.5B: 136M of 494M parameters) and
    its fp32 logits most of the activation memory. Same value as HF's loss (tested).
    """
    import torch.nn.functional as F

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = base.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                use_cache=False).last_hidden_state
    labels = batch["labels"][:, 1:]
    keep = labels != -100
    logits = base.get_output_embeddings()(hidden[:, :-1][keep]).float()
    return F.cross_entropy(logits, labels[keep])


class _TargetLoss(torch.nn.Module):
    """target_loss as a module, so torch's DistributedDataParallel can wrap it and average the adapter's gradients."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels):
        return target_loss(self.model, {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels})


def _batch_loss(model, ddp, batch: list[Example], micro: int, pad_id: int, device, autocast) -> torch.Tensor:
    """Backward through one batch in micro-batches weighted by target tokens; returns the batch's mean loss.

    With several processes (`ddp`), each rank takes examples rank, rank + N, ... of the batch,
    weighted by the whole batch's target tokens and scaled by N (DDP averages over ranks), so the
    gradient is the one-process gradient. Every rank runs the same number of micro-batches; a short
    share is filled with an example of weight zero.
    """
    batch_tokens = max(_targets(batch), 1)
    total = torch.zeros((), device=device)
    if ddp is None:
        for k in range(0, len(batch), micro):
            chunk = batch[k:k + micro]
            with autocast():
                loss = target_loss(model, collate(chunk, pad_id, device))
            weight = _targets(chunk) / batch_tokens
            (loss * weight).backward()
            total += loss.detach().float() * weight
        return total
    w = world()
    per_rank = -(-len(batch) // w.size)
    share = [(batch[p], 1.0) if p < len(batch) else (batch[0], 0.0) for p in range(w.rank, per_rank * w.size, w.size)]
    starts = list(range(0, per_rank, micro))
    for k, start in enumerate(starts):
        chunk = share[start:start + micro]
        real = [e for e, keep in chunk if keep]
        weight = _targets(real) / batch_tokens  # 0 for a chunk of fillers only
        sync = contextlib.nullcontext() if k == len(starts) - 1 else ddp.no_sync()  # all-reduce on the last only
        with sync:
            with autocast():
                # a chunk's loss is its own target-token mean, fillers left out; a fillers-only chunk
                # still runs (weight 0) so every rank does the same backward passes
                loss = ddp(**collate(real or [chunk[0][0]], pad_id, device))
            (loss * weight * w.size).backward()
        total += loss.detach().float() * weight
    return all_sum(total)


def _targets(examples: list[Example]) -> int:
    """Predicted tokens: labels that are not -100, less the first position (never a target after the shift)."""
    return sum(sum(1 for x in e.labels[1:] if x != -100) for e in examples)


@torch.no_grad()
def mean_loss(model, examples: list[Example], batch_size: int, pad_id: int, autocast) -> float | None:
    """Mean loss over every target token of `examples`; halves its batch on out-of-memory."""
    if not examples:
        return None
    w = world()
    examples = examples[w.rank::w.size]  # with several processes each scores every N-th example; sums added below
    model.eval()
    size = HalvingSize(batch_size, "out of memory computing the val loss even one example at a time; lower --max-length")
    device = next(model.parameters()).device
    try:
        while True:
            total, count = 0.0, 0
            try:
                for i in range(0, len(examples), size.size):
                    chunk = examples[i:i + size.size]
                    with autocast():
                        loss = target_loss(model, collate(chunk, pad_id, device))
                    n = _targets(chunk)
                    total, count = total + float(loss) * n, count + n  # note: a host sync per batch, eval only
                break
            except OOM_ERRORS:
                size.halve()
    finally:
        model.train()
    if w.distributed:
        sums = all_sum(torch.tensor([total, float(count)], device=device))
        total, count = float(sums[0]), int(sums[1])
    return total / max(count, 1)


@dataclass
class FinetuneResult:
    steps: int = 0
    epochs_done: int = 0
    train_losses: list = field(default_factory=list)   # (step, mean loss since the last log)
    val_losses: list = field(default_factory=list)     # (step, epoch, val loss)
    best_val: float | None = None
    best_step: int | None = None
    best_epoch: float | None = None
    stopped_early: bool = False
    stopped: bool = False
    train_seconds: float = 0.0
    micro_batch_size: int = 0
    oom_retries: int = 0
    fused: bool = False
    tokens_trained: int = 0
    checkpoint: str | None = None


def train_adapter(model, train: list[Example], val: list[Example], cfg, *, pad_id: int, emit: Callable,
                  should_stop: Callable[[], bool], on_best: Callable[[], None], run_dir: Path | None = None,
                  resume_from: Path | None = None, autocast=None) -> FinetuneResult:
    """Train the adapter of peft `model` for cfg.epochs; `on_best()` is called whenever the val loss improves."""
    from contextlib import nullcontext

    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    autocast = autocast or nullcontext
    device = next(model.parameters()).device
    result = FinetuneResult()
    optimizer, result.fused = adamw(model, cfg.lr, cfg.weight_decay, fused=device.type == "cuda", betas=(0.9, 0.999))
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    scheduler = make_scheduler(optimizer, total_steps=total_steps, warmup=cfg.warmup_ratio, min_lr_ratio=0.1)
    generator = torch.Generator().manual_seed(cfg.seed)
    micro = HalvingSize(cfg.micro_batch_size or cfg.batch_size,
                        "out of memory even with one example per micro-batch; lower --max-length or --rank")
    step, first_epoch, start_index, order, since_best = 0, 1, 0, None, 0
    if resume_from is not None:
        try:
            weights, state = load_checkpoint(resume_from, optimizer, scheduler)
            set_peft_model_state_dict(model, weights)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise UsageError(f"cannot resume from checkpoint {resume_from}: {str(exc).splitlines()[0]}") from None
        set_rng_state(generator, state["rng"])
        step, first_epoch, start_index = state["step"], state["epoch"], state["next_index"]
        order = torch.tensor(state["order"]) if state["order"] else None
        result.train_losses, result.val_losses = state["train_losses"], state["val_losses"]
        result.best_val, result.best_step, result.best_epoch = state["best_val"], state["best_step"], state["best_epoch"]
        since_best = state["since_best"]
        emit(Resume(step=step, epoch=first_epoch, checkpoint=str(resume_from)))

    def checkpoint(epoch: int, next_index: int) -> None:
        state = {"step": step, "epoch": epoch, "next_index": next_index, "order": order.tolist() if order is not None else [],
                 "train_losses": result.train_losses, "val_losses": result.val_losses, "best_val": result.best_val,
                 "best_step": result.best_step, "best_epoch": result.best_epoch, "since_best": since_best,
                 "eval_losses": [v for _, _, v in result.val_losses], "rng": rng_state(generator)}
        result.checkpoint = str(save_checkpoint(run_dir, get_peft_model_state_dict(model), optimizer, scheduler, state))
        emit(Checkpoint(step=step, path=result.checkpoint))

    def validate(epoch_position: float) -> bool:
        """Val loss now; True when it stopped improving for cfg.early_stop checks in a row."""
        nonlocal since_best
        loss = mean_loss(model, val, micro.size, pad_id, autocast)
        if loss is None:
            return False
        result.val_losses.append((step, round(epoch_position, 3), loss))
        emit(EvalLoss(step=step, epoch=round(epoch_position, 3), eval_loss=round(loss, 5)))
        if result.best_val is None or loss < result.best_val:
            result.best_val, result.best_step, result.best_epoch, since_best = loss, step, round(epoch_position, 3), 0
            on_best()
            return False
        since_best += 1
        return bool(cfg.early_stop) and since_best >= cfg.early_stop

    ddp = None
    if world().distributed:  # torch's DistributedDataParallel averages the adapter's gradients over the ranks
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(_TargetLoss(model), device_ids=[device.index] if device.type == "cuda" else None)
    model.train()
    loss_sum, n_logged, tokens_since = torch.zeros((), device=device), 0, 0
    t_start = t_log = last_save = time.perf_counter()
    result.epochs_done = first_epoch - 1
    for epoch in range(first_epoch, cfg.epochs + 1):
        if order is None:
            order = torch.randperm(len(train), generator=generator)
        i = start_index
        while i < steps_per_epoch and not (result.stopped or result.stopped_early):
            batch = [train[j] for j in order[i * cfg.batch_size:(i + 1) * cfg.batch_size].tolist()]
            batch_tokens = _targets(batch)
            try:
                batch_loss = _batch_loss(model, ddp, batch, micro.size, pad_id, device, autocast)
            except OOM_ERRORS:
                if ddp is not None:  # ranks must run the same micro-batches, so one rank cannot halve alone
                    raise OutOfMemory(f"out of memory on rank {world().rank}; lower --batch-size, --micro-batch-size "
                                      f"or --max-length") from None
                optimizer.zero_grad(set_to_none=True)
                micro.halve()
                result.oom_retries += 1
                emit(MicroBatchHalved(step=step + 1, micro_batch_size=micro.size))
                continue  # the same batch again, in smaller pieces
            loss_sum += batch_loss
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step, i, n_logged, tokens_since = step + 1, i + 1, n_logged + 1, tokens_since + batch_tokens
            log_step = step % 5 == 0 or i == steps_per_epoch
            if ddp is None:
                result.stopped = should_stop()
            elif log_step:  # ranks decide together, so none waits for a step the others skip
                result.stopped = any_rank(should_stop())
            if log_step or result.stopped:
                now = time.perf_counter()
                mean = float(loss_sum) / n_logged  # note: the host sync, every 5 steps
                result.train_losses.append((step, round(mean, 5)))
                result.tokens_trained += tokens_since
                emit(Loss(step=step, epoch=epoch, loss=round(mean, 5), lr=scheduler.get_last_lr()[0],
                          tokens_per_s=round(tokens_since / max(now - t_log, 1e-9), 1), total_steps=total_steps))
                loss_sum.zero_()
                n_logged, tokens_since, t_log = 0, 0, now
            if cfg.eval_every and step % cfg.eval_every == 0 and i < steps_per_epoch:
                result.stopped_early = validate(epoch - 1 + i / steps_per_epoch)
            due = cfg.save_minutes and time.perf_counter() - last_save > 60 * cfg.save_minutes
            if run_dir is not None and world().main and (due or result.stopped):
                checkpoint(epoch, i)
                last_save = time.perf_counter()
        if result.stopped:
            break
        order, start_index = None, 0
        result.epochs_done = epoch
        if not result.stopped_early:
            result.stopped_early = validate(float(epoch))
        if result.stopped_early:
            emit(Log(message=f"early stop: the val loss did not improve for {cfg.early_stop} checks "
                             f"(best {result.best_val:.4f} at step {result.best_step})"))
            break
        t_log = time.perf_counter()
    result.train_seconds = time.perf_counter() - t_start
    result.steps, result.micro_batch_size = step, micro.size
    return result
