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

from core.checkpoints import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from core.errors import UsageError
from core.memory import OOM_ERRORS, HalvingSize
from core.optim import adamw, make_scheduler
from core.pretrain.config import PretrainConfig
from core.pretrain.model import CAUSAL_ATTENTION, restore_attention, use_causal_attention


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
    optimizations: list[str] = field(default_factory=list)
    device: str = "cpu"
    peak_memory_mib: float | None = None


def count_steps_per_epoch(n_blocks: int, batch_size: int) -> int:
    """Optimizer steps in one epoch: the last batch may be short, but it is a step (no block is dropped)."""
    return math.ceil(n_blocks / batch_size)


@torch.no_grad()
def evaluate_loss(model, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, autocast) -> float | None:
    """Mean next-token loss over every real token of the held-out blocks; halves its batch on out-of-memory."""
    if inputs.numel() == 0:
        return None
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
    return (total / count.clamp(min=1)).item()  # note: one host sync per evaluation


@dataclass
class Session:
    """Everything the loop works on, made once by prepare()."""

    cfg: PretrainConfig
    model: torch.nn.Module
    forward: Callable                 # the model, or its torch.compile wrapper
    optimizer: torch.optim.Optimizer
    scheduler: object
    accelerator: object
    inputs: torch.Tensor              # (n_blocks [+1 all-masked block], T) on the device
    labels: torch.Tensor
    valid_tokens: torch.Tensor        # predicted tokens per block (labels that are not -100)
    eval_inputs: torch.Tensor
    eval_labels: torch.Tensor
    n_blocks: int
    steps_per_epoch: int
    generator: torch.Generator        # the data order's own RNG (checkpointed)
    micro: HalvingSize                # sequences per forward pass
    fused: bool
    causal: bool                      # the mask-free causal attention path is in use
    attention: str                    # the attention implementation the loop trains with
    bf16: bool
    tf32: bool
    pad_block: int | None             # index of the all-masked block that fills short batches (compile only)
    start: dict = field(default_factory=dict)  # resume position: step, epoch, next_index, order

    @property
    def device(self) -> torch.device:
        return self.inputs.device

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def batch(self, order: torch.Tensor, i: int) -> tuple[torch.Tensor, int]:
        """(block indices of step i of an epoch, how many of them are real blocks).

        Under compile a short last batch is filled up with the all-masked block, so every forward
        has the same shape; the filler carries no label, so no row counts twice.
        """
        bs = self.cfg.batch_size
        real = min(bs, self.n_blocks - i * bs)
        idx = order[i * bs:i * bs + real]
        if self.pad_block is not None:
            width = -(-bs // self.micro.size) * self.micro.size  # whole micro-batches
            if width > real:
                idx = torch.cat([idx, idx.new_full((width - real,), self.pad_block)])
        return idx, real

    def forward_backward(self, idx: torch.Tensor, real: int) -> torch.Tensor:
        """Loss of one batch, in micro-batches weighted by their real tokens (exactly the full-batch mean)."""
        valid = self.valid_tokens[idx]
        batch_tokens = valid.sum()
        total = torch.zeros((), device=self.device)
        micro = self.micro.size
        for k, chunk in enumerate(idx.split(micro)):
            if k * micro >= real:  # only filler blocks left: nothing to learn from, skip the compute
                break
            with self.accelerator.autocast():
                loss = self.forward(input_ids=self.inputs[chunk], labels=self.labels[chunk], use_cache=False).loss
            weight = valid[k * micro:(k + 1) * micro].sum() / batch_tokens
            (loss * weight).backward()
            total += loss.detach().float() * weight
        return total

    def step(self, idx: torch.Tensor, real: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step: (batch loss, whether it was finite), both still on the device.

        No host sync with fused AdamW: clipping returns a tensor and a non-finite step is skipped
        by the kernel itself. Out-of-memory propagates (the loop halves the micro-batch).
        """
        loss = self.forward_backward(idx, real)
        finite = torch.isfinite(loss)
        if self.cfg.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            finite &= torch.isfinite(grad_norm)  # a finite loss can still have inf/NaN gradients
        if self.fused:
            self.optimizer.found_inf = (~finite).float()  # the fused kernel skips the update on the device
            self.optimizer.step()
        elif bool(finite):  # note: unfused optimizers cannot skip on the device, so this check syncs
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss, finite

    def optimizations(self, oom_retries: int = 0) -> list[str]:
        """The speed-ups this session really runs with, from its resolved state."""
        attn = self.attention
        opts = ["packed token blocks (no padding)"]
        if self.bf16:
            opts.append("bf16 autocast (accelerate)")
        if self.tf32:
            opts.append("TF32 matmuls")
        if attn == CAUSAL_ATTENTION:
            opts.append("SDPA causal kernel with no attention mask (no mask building, no packed-sequence check)")
        elif attn:
            opts.append(f"{attn} attention")
        opts.append(f"data resident on {self.device.type}")
        if self.fused:
            opts.append("fused AdamW")
        if self.forward is not self.model:
            opts.append("torch.compile (fixed batch shapes: one compile, timed as its own phase)")
        opts.append(f"loss read back every {self.cfg.log_every} steps")
        if self.cuda and self.fused and self.causal and self.cfg.log_every > 1:
            opts.append("no per-step host sync (only at log steps)")
        if oom_retries:
            opts.append(f"micro-batches of {self.micro.size} after {oom_retries} out-of-memory retries")
        return opts


def _weights(model) -> dict:
    """What a pretraining checkpoint saves. GPT-2 ties lm_head to the token embedding and safetensors refuses
    shared storage, so the tied copy is dropped here and restored by _load_weights."""
    return {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}


def _load_weights(model, weights: dict, path: Path) -> None:
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or any(k != "lm_head.weight" for k in missing):
        raise ValueError(f"checkpoint {path.name} does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.tie_weights()


def prepare(model, train_blocks, eval_blocks, cfg: PretrainConfig, emit: Callable[..., None],
            resume_from: Path | None = None) -> Session:
    """Device, data on it, optimizer, schedule, compile and resume state: everything before the first step."""
    from accelerate import Accelerator

    cuda = torch.cuda.is_available()
    bf16 = cfg.bf16 and cuda and torch.cuda.is_bf16_supported()
    accelerator = Accelerator(mixed_precision="bf16" if bf16 else "no", cpu=not cuda)
    device = accelerator.device
    tf32 = cuda and cfg.tf32
    if tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    causal = use_causal_attention(model)
    # The model is not passed through accelerator.prepare: on one device that would only add a
    # wrapper that casts logits back to fp32, one more full-vocabulary copy per step.
    model.to(device).train()
    inputs, labels = (t.to(device) for t in train_blocks)
    n_blocks = inputs.shape[0]
    pad_block = None
    if cfg.compile:  # one all-masked block at the end fills short batches (Session.batch)
        pad_block = n_blocks
        inputs = torch.cat([inputs, inputs[:1]])
        labels = torch.cat([labels, torch.full_like(labels[:1], -100)])
    eval_inputs, eval_labels = (t.to(device) for t in eval_blocks)

    optimizer, fused = adamw(model, cfg.lr, cfg.weight_decay, fused=cfg.fused_adamw)
    steps_per_epoch = count_steps_per_epoch(n_blocks, cfg.batch_size)
    scheduler = make_scheduler(optimizer, total_steps=steps_per_epoch * cfg.epochs,
                               warmup_ratio=cfg.warmup_ratio, min_lr_ratio=cfg.min_lr_ratio)
    session = Session(
        cfg=cfg, model=model, forward=torch.compile(model) if cfg.compile else model, optimizer=optimizer,
        scheduler=scheduler, accelerator=accelerator, inputs=inputs, labels=labels,
        valid_tokens=(labels[:, 1:] != -100).sum(dim=1), eval_inputs=eval_inputs,
        eval_labels=eval_labels, n_blocks=n_blocks, steps_per_epoch=steps_per_epoch,
        generator=torch.Generator(device=device).manual_seed(cfg.seed),
        micro=HalvingSize(cfg.micro_batch_size or cfg.batch_size, "out of memory even with one sequence per micro-batch; "
                          "lower --block-size or use a smaller --model-size"),
        fused=fused, causal=causal, attention=str(getattr(model.config, "_attn_implementation", "")), bf16=bf16, tf32=tf32,
        pad_block=pad_block,
        start={"step": 0, "epoch": 1, "next_index": 0, "order": None},
    )
    if resume_from is not None:
        try:
            weights, state = load_checkpoint(resume_from, optimizer, scheduler)
            _load_weights(model, weights, resume_from)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:  # damage checkpoint_problem() could not see
            raise UsageError(f"cannot resume from checkpoint {resume_from}: {str(exc).splitlines()[0]}") from None
        if state["order"] and len(state["order"]) != n_blocks:  # the final checkpoint's order is empty
            raise UsageError(f"checkpoint {resume_from.name} was made from {len(state['order'])} blocks of training "
                             f"tokens, but the data now gives {n_blocks}: the data or tokenizer changed since; start a new run")
        set_rng_state(session.generator, state["rng"])
        session.start = {"step": state["step"], "epoch": state["epoch"], "next_index": state["next_index"],
                         "order": torch.tensor(state["order"], device=device), "eval_losses": state["eval_losses"]}
        emit("resume", step=state["step"], epoch=state["epoch"], checkpoint=str(resume_from))
    return session


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
    emit("phase", name="compile", seconds=round(seconds, 3))
    return seconds


def train(model, train_blocks, eval_blocks, cfg: PretrainConfig, emit: Callable[..., None],
          should_stop: Callable[[], bool] = lambda: False, on_step: Callable[[int, int], None] | None = None,
          run_dir: Path | None = None, resume_from: Path | None = None) -> TrainResult:
    """Train for cfg.epochs over `train_blocks` = (inputs, labels); emits loss/eval/heartbeat events."""
    s = prepare(model, train_blocks, eval_blocks, cfg, emit, resume_from)
    result = TrainResult(device=str(s.device), eval_losses=list(s.start.get("eval_losses", [])))
    try:
        if cfg.compile:
            result.compile_seconds = _compile_warmup(s, emit)
        _loop(s, result, emit, should_stop, on_step, run_dir)
    finally:
        restore_attention(model)  # generation and saving need the real masks again
    result.optimizations = s.optimizations(result.oom_retries)
    result.micro_batch_size = s.micro.size
    return result


def _loop(s: Session, result: TrainResult, emit, should_stop, on_step, run_dir) -> None:
    cfg, total_steps = s.cfg, s.steps_per_epoch * s.cfg.epochs
    step, order, start_index = s.start["step"], s.start["order"], s.start["next_index"]

    def checkpoint(epoch: int, next_index: int, order_now: torch.Tensor) -> None:
        state = {"step": step, "epoch": epoch, "next_index": next_index, "order": order_now.tolist(),
                 "eval_losses": result.eval_losses, "rng": rng_state(s.generator)}
        result.checkpoint = str(save_checkpoint(run_dir, _weights(s.model), s.optimizer, s.scheduler, state))
        emit("checkpoint", step=step, path=result.checkpoint)

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
                s.optimizer.zero_grad(set_to_none=True)
                s.micro.halve()
                result.oom_retries += 1
                emit("oom", step=step + 1, micro_batch_size=s.micro.size,
                     accumulation=math.ceil(cfg.batch_size / s.micro.size))
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
            result.stopped = should_stop()
            if step % cfg.log_every == 0 or i == s.steps_per_epoch or result.stopped:
                # note: the host sync point, every log_every steps
                mean_loss, finite_count, worst_run, ntok, nbad = torch.stack(
                    [loss_sum / n_finite.clamp(min=1), n_finite, bad_run_max, tokens_since.float(), bad_total]).tolist()
                now = time.perf_counter()
                result.nonfinite_steps = int(nbad)
                result.tokens_trained += int(ntok)
                if finite_count:
                    emit("loss", step=step, epoch=epoch, loss=round(mean_loss, 5), lr=s.scheduler.get_last_lr()[0],
                         tokens_per_s=round(ntok / max(now - t_log, 1e-9), 1))
                    result.final_loss = mean_loss
                if worst_run >= cfg.max_nonfinite:
                    result.error = (f"the loss was not finite for {int(worst_run)} steps in a row (step {step}); "
                                    f"lower --lr or check the data; the last good checkpoint is kept")
                    emit("log", message=result.error)
                loss_sum.zero_(), n_finite.zero_(), tokens_since.zero_(), bad_run_max.copy_(bad_run)
                t_log = now
            if time.perf_counter() - last_heartbeat > 5:
                emit("heartbeat", step=step)
                last_heartbeat = time.perf_counter()
            due = (cfg.save_every and step % cfg.save_every == 0) or \
                  (cfg.save_minutes and time.perf_counter() - last_save > 60 * cfg.save_minutes)
            if run_dir is not None and result.error is None and (due or result.stopped):
                checkpoint(epoch, i, order)
                last_save = time.perf_counter()
        if result.stopped or result.error:
            break
        order, start_index = None, 0
        result.epochs_done = epoch
        eval_loss = evaluate_loss(s.model, s.eval_inputs, s.eval_labels, s.micro.size, s.accelerator.autocast)
        if eval_loss is not None:
            result.eval_losses.append(eval_loss)
            emit("eval", epoch=epoch, step=step, eval_loss=round(eval_loss, 5))
        t_log = time.perf_counter()  # the next interval's tokens/s measures training, not this evaluation
    finished = not (result.stopped or result.error)
    if run_dir is not None and cfg.save_every and finished and not (result.checkpoint or "").endswith(f"step-{step:06d}"):
        checkpoint(cfg.epochs + 1, 0, torch.zeros(0, dtype=torch.long))  # "at the end": nothing left to do
    if s.cuda:
        torch.cuda.synchronize()
        result.peak_memory_mib = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    result.train_seconds = time.perf_counter() - t_start
    result.steps = step
