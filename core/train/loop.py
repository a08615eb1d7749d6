"""The one training loop, for pretraining and fine-tuning alike.

A kind supplies a `TrainTask`: how a step's batch is made and learned from (forward and backward,
in micro-batches), the held-out loss, and the weights a checkpoint keeps. The loop owns the rest,
the same for every kind: the data order and its RNG, resume state and checkpoint cadence, held-out
checks and early stop, skipping non-finite steps (`max_nonfinite` in a row stop the run as
failed), halving the micro-batch on out-of-memory, heartbeats, the loss read back every
`log_every` steps, the stop agreement across ranks, and tokens/s.

Host syncs, named where they happen: (1) at log steps the device-side counters are read back in
one `.tolist()`; (2) an optimizer without a device-side skip (not fused AdamW) reads `finite` to
decide whether to step; (3) a held-out check reads its loss; (4) with several processes, ranks
agree on stopping at log steps (a collective). A fused-AdamW step on a GPU has none.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch

from core.checkpoints import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from core.distributed import any_rank, gather, world
from core.errors import OutOfMemory, UsageError
from core.memory import OOM_ERRORS, HalvingSize, peak_memory
from core.runlog import Checkpoint, EvalLoss, Event, Heartbeat, Log, Loss, MicroBatchHalved, Resume

HEARTBEAT_SECONDS = 5.0


@dataclass
class LoopSettings:
    """What the loop takes from a kind's config."""

    epochs: int
    batch_size: int                  # items (blocks, examples) per optimizer step
    micro_batch_size: int = 0        # items per forward pass; 0 = the whole batch (halved on out-of-memory)
    log_every: int = 5               # read the loss back every K steps (the loop's only per-step host sync)
    grad_clip: float = 1.0           # clip the global gradient norm (0 = off)
    max_nonfinite: int = 5           # this many non-finite steps in a row stop the run as failed
    save_every: int = 0              # checkpoint every N steps and at the end (0 = off)
    save_minutes: float = 0.0        # checkpoint after this many minutes since the last one (0 = off)
    eval_every: int = 0              # a held-out check every N steps besides the epoch ends (0 = epoch ends only)
    early_stop: int = 0              # stop after this many checks without improvement (0 = never)
    seed: int = 0                    # the data order's RNG
    max_steps: int = 0               # stop after this many optimizer steps (0 = the epochs decide)


def planned_steps(n_items: int, batch_size: int, epochs: int, max_steps: int = 0) -> int:
    """The optimizer steps a run plans for, and its schedule with them: every epoch's (a short last batch is a
    step too), or --max-steps when that comes first."""
    total = -(-n_items // batch_size) * epochs
    return min(total, max_steps) if max_steps > 0 else total


class TrainTask(Protocol):
    """What a kind supplies to the loop."""

    n_items: int                     # blocks or examples per epoch
    item_noun: str                   # what the items are, for messages: "blocks of training tokens"
    unit: str                        # one item, for messages: "sequence", "example"
    shrink_hint: str                 # what makes an item smaller, for out-of-memory messages: "lower --block-size"
    check_noun: str                  # "held-out loss" or "val loss", for messages
    order_device: torch.device       # where the data order (a permutation of the items) lives
    device: torch.device             # where the counters live (the model's device)

    def batch(self, order: torch.Tensor, i: int, micro: int) -> Any:
        """The batch of step i of an epoch (items order[i*bs:(i+1)*bs], filled up if the kind needs fixed shapes)."""

    def forward_backward(self, batch: Any, micro: int) -> tuple[torch.Tensor, Any]:
        """Gradients of the batch's mean loss, in micro-batches of `micro`; (that loss on the device, its predicted tokens)."""

    def evaluate(self, micro: int) -> float | None:
        """The held-out loss now (None without held-out data)."""

    def weights(self) -> dict:
        """What a checkpoint keeps of the model (all of it, or only the adapter)."""

    def load_weights(self, weights: dict, path: Path) -> None:
        """Put a checkpoint's weights back."""

    # Optional: a core.train.fsdp.ShardedState when checkpoints are torch.distributed.checkpoint folders that every
    # rank writes its shard of (--fsdp); absent or None, rank 0 writes `weights()` (safetensors).
    sharded_state: Any


@dataclass
class Hooks:
    """Where the loop reports: the run's events, its stop request, a progress bar, its folder."""

    emit: Callable[[Event], None]
    should_stop: Callable[[], bool] = lambda: False
    on_step: Callable[[int, int], None] | None = None     # (step, total steps) after every step
    run_dir: Path | None = None                          # checkpoints go to run_dir/checkpoints (None: no checkpoints)
    after_check: Callable[[int], None] | None = None      # after every held-out check (generation samples)
    at_log_step: Callable[[int], None] | None = None      # after every log step (a sample request from the app)
    on_best: Callable[[], None] | None = None             # the held-out loss just improved (keep this adapter)


@dataclass
class LoopResult:
    steps: int = 0
    epochs_done: int = 0
    final_loss: float | None = None
    train_losses: list = field(default_factory=list)    # (step, mean loss since the previous log step)
    evals: list = field(default_factory=list)           # (step, epoch position, held-out loss) of every check
    best: dict = field(default_factory=lambda: {"loss": None, "step": None, "epoch": None})
    since_best: int = 0
    stopped: bool = False                               # a stop was asked for
    stopped_early: bool = False                         # --early-stop: the held-out loss stopped improving
    error: str | None = None                            # the run had to stop itself (non-finite losses)
    nonfinite_steps: int = 0
    tokens_trained: int = 0                             # predicted tokens of the steps this process ran
    train_seconds: float = 0.0
    micro_batch_size: int = 0
    oom_retries: int = 0
    checkpoint: str | None = None                       # the newest checkpoint this process wrote
    peak_memory_mib: float | None = None
    max_steps_reached: bool = False                     # --max-steps ended the run
    rank_memory: list = field(default_factory=list)     # each rank's peak memory (core.memory.peak_memory)

    @property
    def epoch_end_losses(self) -> list[float]:
        """The held-out loss at each epoch end (a check at a whole epoch position)."""
        return [loss for _, epoch, loss in self.evals if float(epoch).is_integer()]


@dataclass
class _Position:
    step: int = 0
    epoch: int = 1
    next_index: int = 0
    order: torch.Tensor | None = None
    order_rng: torch.Tensor | None = None   # the data RNG's state the epoch's order was drawn from


def _resume(task: TrainTask, optimizer, scheduler, generator, result: LoopResult, path: Path, emit) -> _Position:
    try:
        weights, state = load_checkpoint(path, optimizer, scheduler, sharded=getattr(task, "sharded_state", None))
        if weights:  # a sharded checkpoint was loaded into the model and optimizer already
            task.load_weights(weights, path)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:  # damage checkpoint_problem() could not see
        raise UsageError(f"cannot resume from checkpoint {path}: {str(exc).splitlines()[0]}") from None
    order, n_items = state["order"], state.get("n_items", len(state["order"]))
    if n_items and n_items != task.n_items:  # an older final checkpoint records neither
        raise UsageError(f"checkpoint {path.name} was made from {n_items} {task.item_noun}, but the data now gives "
                         f"{task.n_items}: the data or tokenizer changed since; start a new run")
    order_rng = state["rng"].get("order")
    if order:  # older checkpoints kept the order itself
        order = torch.tensor(order, device=task.order_device)
    elif order_rng is not None and state["next_index"]:  # mid-epoch: the same order, drawn again from the same state
        generator.set_state(order_rng)
        order = torch.randperm(task.n_items, device=task.order_device, generator=generator)
    set_rng_state(generator, state["rng"])
    result.train_losses = [tuple(x) for x in state.get("train_losses", [])]
    result.evals = [tuple(x) for x in state.get("evals", [])]
    result.best = state.get("best") or result.best
    result.since_best = state.get("since_best", 0)
    emit(Resume(step=state["step"], epoch=state["epoch"], checkpoint=str(path)))
    return _Position(state["step"], state["epoch"], state["next_index"], order if len(order) else None, order_rng)


def optimizer_step(task: TrainTask, batch, micro: int, optimizer, scheduler, grad_clip: float, fused: bool):
    """One optimizer step on `batch`: (its loss, its predicted tokens, whether it was finite), all still on the device.

    No host sync with fused AdamW: clipping returns a tensor, and a non-finite step (a NaN/inf loss,
    or a finite loss with NaN/inf gradients) is skipped by the fused kernel itself (found_inf).
    Out-of-memory propagates; the loop halves the micro-batch and runs the step again.
    """
    loss, tokens = task.forward_backward(batch, micro)
    finite = torch.isfinite(loss)
    if grad_clip > 0:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
        if hasattr(norm, "full_tensor"):  # sharded parameters (--fsdp) give the norm as a DTensor
            norm = norm.full_tensor()
        finite &= torch.isfinite(norm)
    if fused:
        optimizer.found_inf = (~finite).float()  # the fused kernel skips the update on the device
        optimizer.step()
    elif bool(finite):  # note: host sync, an optimizer without a device-side skip must be told here
        optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss, tokens, finite


def train(task: TrainTask, optimizer, scheduler, settings: LoopSettings, hooks: Hooks, *, fused: bool,
          resume_from: Path | None = None) -> LoopResult:
    """Train for settings.epochs (or settings.max_steps); `fused`: the optimizer skips a non-finite step on the device
    (fused AdamW)."""
    s, emit, w = settings, hooks.emit, world()
    sharded = getattr(task, "sharded_state", None)
    result = LoopResult()
    generator = torch.Generator(device=task.order_device).manual_seed(s.seed)
    pos = _resume(task, optimizer, scheduler, generator, result, resume_from, emit) if resume_from else _Position()
    micro = HalvingSize(s.micro_batch_size or s.batch_size,
                        f"out of memory even with one {task.unit} per micro-batch; {task.shrink_hint}")
    steps_per_epoch = -(-task.n_items // s.batch_size)  # a short last batch is a step too: no item is dropped
    total_steps = planned_steps(task.n_items, s.batch_size, s.epochs, s.max_steps)
    cuda = task.device.type == "cuda"

    def check(epoch_position: float) -> bool:
        """A held-out check now (samples after it); True when --early-stop says training should end."""
        loss = task.evaluate(micro.size)  # note: host sync, reads the held-out loss
        if loss is not None:
            result.evals.append((pos.step, round(epoch_position, 3), loss))
            emit(EvalLoss(step=pos.step, epoch=round(epoch_position, 3), eval_loss=round(loss, 5)))
            if result.best["loss"] is None or loss < result.best["loss"]:
                result.best = {"loss": loss, "step": pos.step, "epoch": round(epoch_position, 3)}
                result.since_best = 0
                if hooks.on_best is not None:
                    hooks.on_best()
            else:
                result.since_best += 1
        if hooks.after_check is not None:
            hooks.after_check(pos.step)
        return bool(s.early_stop) and result.since_best >= s.early_stop

    def checkpoint(epoch: int, next_index: int, order_rng: torch.Tensor | None) -> None:
        # The order is not stored: the RNG state it was drawn from gives it back, whatever the corpus size.
        rng = {**rng_state(generator), **({"order": order_rng} if order_rng is not None else {})}
        # (an epoch resumed from an older checkpoint, which kept the order itself, keeps it the same way)
        order = pos.order.tolist() if order_rng is None and next_index and pos.order is not None else []
        state = {"step": pos.step, "epoch": epoch, "next_index": next_index, "order": order, "n_items": task.n_items,
                 "eval_losses": result.epoch_end_losses, "evals": result.evals, "train_losses": result.train_losses,
                 "best": result.best, "since_best": result.since_best, "rng": rng}
        weights = None if sharded is not None else task.weights()
        result.checkpoint = str(save_checkpoint(hooks.run_dir, weights, optimizer, scheduler, state, sharded=sharded))
        emit(Checkpoint(step=pos.step, path=result.checkpoint))

    def budget_spent() -> bool:
        return s.max_steps > 0 and pos.step >= s.max_steps

    # Device-side counters, read back only at log steps.
    zero = lambda dtype=torch.float32: torch.zeros((), dtype=dtype, device=task.device)  # noqa: E731
    loss_sum, n_finite, tokens_since = zero(), zero(), zero(torch.long)
    bad_run, bad_run_max, bad_total = zero(), zero(), zero()  # runs of non-finite steps
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    saves = hooks.run_dir is not None and (w.main or sharded is not None)  # sharded: every rank writes its shard
    t_start = t_log = last_heartbeat = last_save = time.perf_counter()
    result.epochs_done = pos.epoch - 1
    for epoch in range(pos.epoch, s.epochs + 1):
        if budget_spent():  # resumed from the checkpoint written as --max-steps ended the run
            break
        if pos.order is None:
            pos.order_rng = generator.get_state()
            pos.order = torch.randperm(task.n_items, device=task.order_device, generator=generator)
        order = pos.order
        i = pos.next_index
        while i < steps_per_epoch and not (result.stopped or result.error or result.stopped_early or budget_spent()):
            batch = task.batch(order, i, micro.size)
            try:
                loss, tokens, finite = optimizer_step(task, batch, micro.size, optimizer, scheduler, s.grad_clip, fused)
            except OOM_ERRORS:
                if w.distributed:  # ranks must run the same micro-batches, so one rank cannot halve alone
                    raise OutOfMemory(f"out of memory on rank {w.rank} at batch {s.batch_size}; lower --batch-size or "
                                      f"--micro-batch-size, or {task.shrink_hint}") from None
                optimizer.zero_grad(set_to_none=True)
                micro.halve()
                result.oom_retries += 1
                emit(MicroBatchHalved(step=pos.step + 1, micro_batch_size=micro.size,
                                      accumulation=math.ceil(s.batch_size / micro.size)))
                continue  # the same batch again, in smaller pieces
            pos.step, i = pos.step + 1, i + 1
            loss_sum += torch.where(finite, loss.detach().float(), 0.0)
            n_finite += finite
            bad_run = (bad_run + 1) * ~finite
            bad_run_max = torch.maximum(bad_run_max, bad_run)
            bad_total += ~finite
            tokens_since += tokens
            if hooks.on_step is not None:
                hooks.on_step(pos.step, total_steps)
            log_step = pos.step % s.log_every == 0 or i == steps_per_epoch or budget_spent()
            if not w.distributed:
                result.stopped = hooks.should_stop()
            elif log_step:  # note: a collective; ranks decide together so none waits for a step the others skip
                result.stopped = any_rank(hooks.should_stop())
            if log_step or result.stopped:
                # note: the host sync point, every log_every steps
                mean, finite_count, worst_run, ntok, nbad = torch.stack(
                    [loss_sum / n_finite.clamp(min=1), n_finite, bad_run_max, tokens_since.float(), bad_total]).tolist()
                now = time.perf_counter()
                result.nonfinite_steps = int(nbad)
                result.tokens_trained += int(ntok)
                if finite_count:
                    result.final_loss = mean
                    result.train_losses.append((pos.step, round(mean, 5)))
                    emit(Loss(step=pos.step, epoch=epoch, loss=round(mean, 5), lr=scheduler.get_last_lr()[0],
                              tokens_per_s=round(ntok / max(now - t_log, 1e-9), 1), total_steps=total_steps))
                if worst_run >= s.max_nonfinite:
                    result.error = (f"the loss was not finite for {int(worst_run)} steps in a row (step {pos.step}); "
                                    f"lower --lr or check the data; the last good checkpoint is kept")
                    emit(Log(message=result.error))
                loss_sum.zero_(), n_finite.zero_(), tokens_since.zero_(), bad_run_max.copy_(bad_run)
                if hooks.at_log_step is not None:
                    hooks.at_log_step(pos.step)
                t_log = time.perf_counter()
            if s.eval_every and pos.step % s.eval_every == 0 and i < steps_per_epoch and not result.error \
                    and not budget_spent():  # the run's end has its own check
                result.stopped_early = check(epoch - 1 + i / steps_per_epoch)
                t_log = time.perf_counter()  # the next tokens/s measures training, not this check
            if time.perf_counter() - last_heartbeat > HEARTBEAT_SECONDS:
                emit(Heartbeat(step=pos.step))
                last_heartbeat = time.perf_counter()
            due = (s.save_every and pos.step % s.save_every == 0) or \
                  (s.save_minutes and time.perf_counter() - last_save > 60 * s.save_minutes)
            if saves and result.error is None and ((due and not budget_spent()) or result.stopped):
                checkpoint(epoch, i, pos.order_rng)  # (the budget's end is saved as the run's end, below)
                last_save = time.perf_counter()
        if result.stopped or result.error:
            break
        if i < steps_per_epoch and budget_spent():  # --max-steps ended the run inside the epoch: one last check
            result.max_steps_reached = True
            if not result.stopped_early:
                check(epoch - 1 + i / steps_per_epoch)
            break
        pos.order, pos.next_index = None, 0
        if not result.stopped_early:
            result.epochs_done = epoch
            result.stopped_early = check(float(epoch))
        if result.stopped_early:
            emit(Log(message=f"early stop after step {pos.step}: the {task.check_noun} did not improve for {s.early_stop} "
                             f"checks (best {result.best['loss']:.4f} at step {result.best['step']})"))
            break
        if budget_spent():
            result.max_steps_reached = epoch < s.epochs
            break
        t_log = time.perf_counter()  # the next interval's tokens/s measures training, not this evaluation
    finished = not (result.stopped or result.error)
    if saves and s.save_every and finished and not (result.checkpoint or "").endswith(f"step-{pos.step:06d}"):
        checkpoint(s.epochs + 1, 0, None)  # "at the end": nothing left to do
    if cuda:
        torch.cuda.synchronize()
        result.peak_memory_mib = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    result.rank_memory = gather({"rank": w.rank, **peak_memory(task.device)})  # a collective with several ranks
    result.train_seconds = time.perf_counter() - t_start
    result.steps, result.micro_batch_size = pos.step, micro.size
    return result
