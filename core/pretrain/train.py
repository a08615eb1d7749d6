"""The training loop, with every speed trick named where it happens.

`prepare()` builds what the loop needs once (device, data, optimizer, schedule, resume state);
`train()` is the loop itself, readable on one screen; `Session.step()` is one optimizer step
with no host sync in it. Speed-ups (each switchable from PretrainConfig; the summary lists only
those that were active, from `Session.optimizations()`):
  - token blocks live on the device for the whole run: no DataLoader, no host->device copies;
  - bf16 autocast via accelerate (parameters stay fp32, no GradScaler needed) and TF32 matmuls;
  - fused AdamW: one kernel updates every parameter, and it skips a step with a non-finite
    loss on the device (found_inf), so guarding against NaN costs no host sync;
  - SDPA's causal kernel with no attention mask at all (model.py says why that is exact here);
  - the loss is read back from the device only every `log_every` steps (the only host sync);
  - optional torch.compile with fixed shapes: the last batch of an epoch is padded with an
    all-masked block, so there is one compile, timed as its own phase.
Reliability: checkpoints (core/checkpoints.py), resume, clean stop on SIGINT/SIGTERM/SIGHUP, micro-batches
halved with doubled accumulation on out-of-memory (same effective batch).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from core.checkpoints import rng_state, save_checkpoint
from core.distributed import all_sum, any_rank, world
from core.errors import OutOfMemory
from core.memory import OOM_ERRORS, HalvingSize
from core.pretrain.config import PretrainConfig
from core.pretrain.model import restore_attention
from core.pretrain.session import Session, checkpoint_weights, count_steps_per_epoch, prepare  # noqa: F401 (the API)
from core.runlog import Checkpoint, EvalLoss, Heartbeat, Log, Loss, MicroBatchHalved, Phase
from core.runs import SAMPLE_REQUEST


@dataclass
class TrainResult:
    steps: int = 0
    epochs_done: int = 0
    final_loss: float | None = None
    eval_losses: list[float] = field(default_factory=list)
    train_seconds: float = 0.0          # the loop, compile excluded
    compile_seconds: float | None = None  # the warm-up step that compiled the model
    stopped: bool = False
    error: str | None = None            # set when the run had to stop itself (non-finite losses)
    nonfinite_steps: int = 0            # updates skipped because the loss was NaN/inf
    tokens_trained: int = 0             # predicted tokens of the steps this process ran (not those before a resume)
    micro_batch_size: int = 0
    oom_retries: int = 0
    checkpoint: str | None = None       # the newest checkpoint written by this process
    eval_history: list = field(default_factory=list)  # (step, epoch position, held-out loss) of every check
    stopped_early: bool = False         # --early-stop: the held-out loss stopped improving
    optimizations: list[str] = field(default_factory=list)
    device: str = "cpu"
    peak_memory_mib: float | None = None


@torch.no_grad()
def evaluate_loss(model, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, autocast) -> float | None:
    """Mean next-token loss over every real token of the held-out blocks; halves its batch on out-of-memory.

    With several processes each rank scores every N-th block and the sums are added up over ranks,
    so every rank gets the same figure.
    """
    if inputs.numel() == 0:
        return None
    w = world()
    inputs, labels = inputs[w.rank::w.size], labels[w.rank::w.size]
    model.eval()
    size = HalvingSize(batch_size, "out of memory evaluating even one sequence at a time; lower --block-size")
    try:
        while True:
            total = torch.zeros((), device=inputs.device)
            count = torch.zeros((), device=inputs.device)
            try:
                for i in range(0, inputs.shape[0], size.size):
                    x, y = inputs[i:i + size.size], labels[i:i + size.size]
                    with autocast():
                        loss = model(input_ids=x, labels=y, use_cache=False).loss
                    n = (y[:, 1:] != -100).sum()
                    total += loss.float() * n
                    count += n
                break
            except OOM_ERRORS:
                size.halve()
    finally:
        model.train()
    all_sum(total), all_sum(count)
    return (total / count.clamp(min=1)).item()  # note: one host sync per evaluation


def _compile_warmup(s: Session, emit) -> float:
    """One forward and backward on a full batch so torch.compile does its work before the clock starts.

    The RNG is forked (dropout draws nothing from the run's stream) and the gradients are thrown
    away, so the run trains exactly as if it had not happened.
    """
    t = time.perf_counter()
    order = torch.arange(s.n_blocks, device=s.device)
    with torch.random.fork_rng(devices=[s.device] if s.cuda else []):
        while True:
            try:
                s.forward_backward(*s.batch(order, 0))
                break
            except OOM_ERRORS:
                s.optimizer.zero_grad(set_to_none=True)
                s.micro.halve()
    s.optimizer.zero_grad(set_to_none=True)
    if s.cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    emit(Phase(name="compile", seconds=round(seconds, 3)))
    return seconds


def train(model, train_blocks, eval_blocks, cfg: PretrainConfig, emit: Callable[..., None],
          should_stop: Callable[[], bool] = lambda: False, on_step: Callable[[int, int], None] | None = None,
          run_dir: Path | None = None, resume_from: Path | None = None,
          sampler: Callable[[int], None] | None = None) -> TrainResult:
    """Train for cfg.epochs over `train_blocks` = (inputs, labels); emits loss/eval/heartbeat events.

    `sampler(step)` draws generation samples after every held-out check, and whenever the run
    folder holds a sample request (the app's "samples now" key) at a log step.
    """
    s = prepare(model, train_blocks, eval_blocks, cfg, emit, resume_from)
    result = TrainResult(device=str(s.device), eval_losses=list(s.start.get("eval_losses", [])))
    try:
        if cfg.compile:
            result.compile_seconds = _compile_warmup(s, emit)
        _loop(s, result, emit, should_stop, on_step, run_dir, sampler)
    finally:
        restore_attention(model)  # generation and saving need the real masks again
    result.optimizations = s.optimizations(result.oom_retries)
    result.micro_batch_size = s.micro.size
    return result


def _loop(s: Session, result: TrainResult, emit, should_stop, on_step, run_dir, sampler=None) -> None:
    cfg, total_steps = s.cfg, s.steps_per_epoch * s.cfg.epochs
    step, order, start_index = s.start["step"], s.start["order"], s.start["next_index"]
    best = {"loss": s.start.get("best_eval"), "since": s.start.get("since_best", 0)}  # for --early-stop

    def check(epoch_position: float, epoch_end: bool) -> bool:
        """Held-out loss now (and samples); True when --early-stop says training should end."""
        loss = evaluate_loss(s.model, s.eval_inputs, s.eval_labels, s.micro.size, s.accelerator.autocast)
        if loss is not None:
            result.eval_history.append((step, round(epoch_position, 3), loss))
            if epoch_end:
                result.eval_losses.append(loss)
            emit(EvalLoss(epoch=round(epoch_position, 3), step=step, eval_loss=round(loss, 5)))
            if best["loss"] is None or loss < best["loss"]:
                best.update(loss=loss, since=0)
            else:
                best["since"] += 1
        if sampler is not None:
            sampler(step)
        return bool(cfg.early_stop) and best["since"] >= cfg.early_stop

    def checkpoint(epoch: int, next_index: int, order_now: torch.Tensor) -> None:
        state = {"step": step, "epoch": epoch, "next_index": next_index, "order": order_now.tolist(),
                 "eval_losses": result.eval_losses, "rng": rng_state(s.generator), "best_eval": best["loss"],
                 "since_best": best["since"]}
        result.checkpoint = str(save_checkpoint(run_dir, checkpoint_weights(s.model), s.optimizer, s.scheduler, state))
        emit(Checkpoint(step=step, path=result.checkpoint))

    # Device-side counters, read back only at log steps.
    zeros = lambda dtype=torch.float32: torch.zeros((), dtype=dtype, device=s.device)  # noqa: E731
    loss_sum, n_finite, tokens_since = zeros(), zeros(), zeros(torch.long)
    bad_run, bad_run_max, bad_total = zeros(), zeros(), zeros()  # runs of non-finite losses
    if s.cuda:
        torch.cuda.reset_peak_memory_stats()
    t_start = t_log = last_heartbeat = last_save = time.perf_counter()
    result.epochs_done = s.start["epoch"] - 1
    for epoch in range(s.start["epoch"], cfg.epochs + 1):
        if order is None:
            order = torch.randperm(s.n_blocks, device=s.device, generator=s.generator)
        i = start_index
        while i < s.steps_per_epoch and not result.stopped and result.error is None:
            idx, real = s.batch(order, i)
            try:
                loss, finite = s.step(idx, real)
            except OOM_ERRORS:
                if s.ddp is not None:  # ranks must run the same micro-batches, so one rank cannot halve alone
                    raise OutOfMemory(f"out of memory on rank {s.rank} at batch {cfg.batch_size}; lower --batch-size, "
                                      f"--micro-batch-size or --block-size") from None
                s.optimizer.zero_grad(set_to_none=True)
                s.micro.halve()
                result.oom_retries += 1
                emit(MicroBatchHalved(step=step + 1, micro_batch_size=s.micro.size,
                                 accumulation=math.ceil(cfg.batch_size / s.micro.size)))
                continue  # the same batch again, in smaller pieces
            step, i = step + 1, i + 1
            loss_sum += torch.where(finite, loss, 0.0)
            n_finite += finite
            bad_run = (bad_run + 1) * ~finite
            bad_run_max = torch.maximum(bad_run_max, bad_run)
            bad_total += ~finite
            tokens_since += s.valid_tokens[idx].sum()  # filler blocks count zero
            if on_step:
                on_step(step, total_steps)
            log_step = step % cfg.log_every == 0 or i == s.steps_per_epoch
            if s.ddp is None:
                result.stopped = should_stop()
            elif log_step:  # ranks decide together, at log steps, so none waits for a step the others skip
                result.stopped = any_rank(should_stop())
            if log_step or result.stopped:
                # note: the host sync point, every log_every steps
                mean_loss, finite_count, worst_run, ntok, nbad = torch.stack(
                    [loss_sum / n_finite.clamp(min=1), n_finite, bad_run_max, tokens_since.float(), bad_total]).tolist()
                now = time.perf_counter()
                result.nonfinite_steps = int(nbad)
                result.tokens_trained += int(ntok)
                if finite_count:
                    emit(Loss(step=step, epoch=epoch, loss=round(mean_loss, 5), lr=s.scheduler.get_last_lr()[0],
                              tokens_per_s=round(ntok / max(now - t_log, 1e-9), 1)))
                    result.final_loss = mean_loss
                if worst_run >= cfg.max_nonfinite:
                    result.error = (f"the loss was not finite for {int(worst_run)} steps in a row (step {step}); "
                                    f"lower --lr or check the data; the last good checkpoint is kept")
                    emit(Log(message=result.error))
                loss_sum.zero_(), n_finite.zero_(), tokens_since.zero_(), bad_run_max.copy_(bad_run)
                if sampler is not None and run_dir is not None and s.main and (run_dir / SAMPLE_REQUEST).exists():
                    (run_dir / SAMPLE_REQUEST).unlink(missing_ok=True)  # asked for from the app
                    sampler(step)
                t_log = time.perf_counter()
            if cfg.eval_every and step % cfg.eval_every == 0 and i < s.steps_per_epoch:
                result.stopped_early = check(epoch - 1 + i / s.steps_per_epoch, epoch_end=False)
                t_log = time.perf_counter()  # the next tokens/s measures training, not this check
                if result.stopped_early:
                    break
            if time.perf_counter() - last_heartbeat > 5:
                emit(Heartbeat(step=step))
                last_heartbeat = time.perf_counter()
            due = (cfg.save_every and step % cfg.save_every == 0) or \
                  (cfg.save_minutes and time.perf_counter() - last_save > 60 * cfg.save_minutes)
            if run_dir is not None and s.main and result.error is None and (due or result.stopped):
                checkpoint(epoch, i, order)
                last_save = time.perf_counter()
        if result.stopped or result.error:
            break
        order, start_index = None, 0
        result.epochs_done = epoch if not result.stopped_early else epoch - 1
        if result.stopped_early or check(float(epoch), epoch_end=True):
            result.stopped_early = True
            emit(Log(message=f"early stop after step {step}: the held-out loss did not improve for {cfg.early_stop} "
                             f"checks (best {best['loss']:.4f})"))
            break
        t_log = time.perf_counter()  # the next interval's tokens/s measures training, not this evaluation
    finished = not (result.stopped or result.error)
    final_saved = (result.checkpoint or "").endswith(f"step-{step:06d}")
    if run_dir is not None and s.main and cfg.save_every and finished and not final_saved:
        checkpoint(cfg.epochs + 1, 0, torch.zeros(0, dtype=torch.long))  # "at the end": nothing left to do
    if s.cuda:
        torch.cuda.synchronize()
        result.peak_memory_mib = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    result.train_seconds = time.perf_counter() - t_start
    result.steps = step
