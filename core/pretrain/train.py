"""Pretraining on the shared training loop (core/train/loop.py), with every speed trick named where it happens.

`prepare()` (core/pretrain/session.py) builds what the loop works on once; `train()` runs the loop
on it. Speed-ups (each switchable from PretrainConfig; the summary lists only those that were
active, from `Session.optimizations()`):
  - token blocks live on the device for the whole run: no DataLoader, no host->device copies;
  - bf16 autocast via accelerate (parameters stay fp32, no GradScaler needed) and TF32 matmuls;
  - fused AdamW: one kernel updates every parameter, and it skips a step with a non-finite
    loss on the device (found_inf), so guarding against NaN costs no host sync;
  - SDPA's causal kernel with no attention mask at all (model.py says why that is exact here);
  - the loss is read back from the device only every `log_every` steps (the only host sync);
  - optional torch.compile with fixed shapes: the last batch of an epoch is padded with an
    all-masked block, so there is one compile, timed as its own phase.
Reliability comes from the shared loop: checkpoints, resume, clean stops, micro-batches halved with
doubled accumulation on out-of-memory (same effective batch), non-finite steps skipped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from core.distributed import all_sum, any_rank, world
from core.errors import OutOfMemory
from core.memory import OOM_ERRORS, HalvingSize
from core.pretrain.config import PretrainConfig
from core.pretrain.model import restore_attention
from core.pretrain.session import Session, checkpoint_weights, count_steps_per_epoch, prepare  # noqa: F401 (the API)
from core.runlog import Phase
from core.runs import SAMPLE_REQUEST
from core.train.loop import Hooks, LoopResult, LoopSettings
from core.train.loop import train as train_loop
from core.train.losses import causal_lm_loss


@dataclass
class TrainResult(LoopResult):
    """The shared loop's result and what pretraining adds to it."""

    compile_seconds: float | None = None  # the warm-up step that compiled the model
    optimizations: list[str] = field(default_factory=list)
    device: str = "cpu"

    @property
    def eval_losses(self) -> list[float]:
        return self.epoch_end_losses


@torch.no_grad()
def evaluate_loss(model, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, autocast,
                  chunked: bool = False) -> float | None:
    """Mean next-token loss over every real token of the held-out blocks; halves its batch on out-of-memory.
    `chunked`: through the output layer a chunk of positions at a time (core/train/losses.py), no full logits.

    With several processes each rank scores every N-th block and the sums are added up over ranks,
    so every rank gets the same figure. A sharded model (--fsdp) gathers its blocks in every forward, so
    there every rank runs the same forwards: a short share is filled up with a block that counts nothing.
    """
    from core.train.fsdp import is_sharded

    if inputs.numel() == 0:
        return None
    w = world()
    lockstep = is_sharded(model)
    per_rank = -(-inputs.shape[0] // w.size)
    inputs, labels = inputs[w.rank::w.size], labels[w.rank::w.size]
    if lockstep and inputs.shape[0] < per_rank:
        inputs = torch.cat([inputs, inputs.new_zeros((per_rank - inputs.shape[0], inputs.shape[1]))])
        labels = torch.cat([labels, labels.new_full((per_rank - labels.shape[0], labels.shape[1]), -100)])
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
                        loss = (causal_lm_loss(model.base_model, model.get_output_embeddings().weight, x, y) if chunked
                                else model(input_ids=x, labels=y, use_cache=False).loss)
                    n = (y[:, 1:] != -100).sum()
                    total += torch.where(n > 0, loss.float() * n, 0.0)  # a filler-only batch's mean is 0/0
                    count += n
                break
            except OOM_ERRORS:
                if lockstep:  # the ranks must run the same forwards, so one cannot halve alone
                    raise OutOfMemory(f"out of memory on rank {w.rank} computing the held-out loss; lower --batch-size "
                                      f"or --block-size") from None
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
    order = torch.arange(s.n_blocks, device=s.order_device)
    micro = HalvingSize(s.micro_size, "out of memory even with one sequence per micro-batch; lower --block-size or use "
                                      "a smaller --model-size")
    with torch.random.fork_rng(devices=[s.device] if s.cuda else []):
        while True:
            try:
                s.forward_backward(s.batch(order, 0, micro.size), micro.size)
                break
            except OOM_ERRORS:
                s.optimizer.zero_grad(set_to_none=True)
                micro.halve()
    s.optimizer.zero_grad(set_to_none=True)
    s.micro_size = micro.size  # the loop starts from the size that fitted
    if s.cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    emit(Phase(name="compile", seconds=round(seconds, 3)))
    return seconds


def loop_settings(cfg: PretrainConfig, micro_size: int) -> LoopSettings:
    return LoopSettings(epochs=cfg.epochs, batch_size=cfg.batch_size, micro_batch_size=micro_size, log_every=cfg.log_every,
                        grad_clip=cfg.grad_clip, max_nonfinite=cfg.max_nonfinite, save_every=cfg.save_every,
                        save_minutes=cfg.save_minutes, eval_every=cfg.eval_every, early_stop=cfg.early_stop, seed=cfg.seed,
                        max_steps=cfg.max_steps)


def train(model, train_blocks, eval_blocks, cfg: PretrainConfig, emit: Callable,
          should_stop: Callable[[], bool] = lambda: False, on_step: Callable[[int, int], None] | None = None,
          run_dir: Path | None = None, resume_from: Path | None = None,
          sampler: Callable[[int], None] | None = None) -> TrainResult:
    """Train for cfg.epochs over `train_blocks` = (inputs, labels); emits loss/eval/heartbeat events.

    `sampler(step)` draws generation samples after every held-out check, and whenever the run
    folder holds a sample request (the app's "samples now" key) at a log step.
    """
    s = prepare(model, train_blocks, eval_blocks, cfg)
    compile_seconds = None

    def sample_request(step: int) -> None:
        asked = run_dir is not None and s.main and (run_dir / SAMPLE_REQUEST).exists()  # asked for from the app
        if s.fsdp:  # a sharded model generates on every rank together (note: a collective at log steps)
            asked = any_rank(asked)
        if asked:
            if s.main:
                (run_dir / SAMPLE_REQUEST).unlink(missing_ok=True)
            sampler(step)

    hooks = Hooks(emit=emit, should_stop=should_stop, on_step=on_step, run_dir=run_dir, after_check=sampler,
                  at_log_step=sample_request if sampler is not None else None)
    try:
        if cfg.compile:
            compile_seconds = _compile_warmup(s, emit)
        loop = train_loop(s, s.optimizer, s.scheduler, loop_settings(cfg, s.micro_size), hooks, fused=s.fused,
                          resume_from=resume_from)
    finally:
        restore_attention(model)  # generation and saving need the real masks again
    return TrainResult(**vars(loop), compile_seconds=compile_seconds, device=str(s.device),
                       optimizations=s.optimizations(loop.oom_retries, loop.micro_batch_size))
