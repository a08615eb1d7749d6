"""What the pretraining loop works on, set up once: device, data on it, optimizer, schedule, compile, resume.

`prepare()` builds a Session; `Session.step()` is one optimizer step with no host sync in it, and
`Session.optimizations()` names the speed-ups the session really runs with.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from core.checkpoints import load_checkpoint, set_rng_state
from core.distributed import all_sum, world
from core.errors import UsageError
from core.memory import HalvingSize
from core.optim import adamw, make_scheduler
from core.pretrain.config import PretrainConfig
from core.pretrain.model import CAUSAL_ATTENTION, use_causal_attention
from core.runlog import Resume


def count_steps_per_epoch(n_blocks: int, batch_size: int) -> int:
    """Optimizer steps in one epoch: the last batch may be short, but it is a step (no block is dropped)."""
    return -(-n_blocks // batch_size)


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
    ddp: object = None                # the DistributedDataParallel wrapper with several processes, else None
    rank: int = 0
    world_size: int = 1
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

    @property
    def main(self) -> bool:
        return self.rank == 0

    def forward_backward(self, idx: torch.Tensor, real: int) -> torch.Tensor:
        """Loss of one batch, in micro-batches weighted by their real tokens (exactly the full-batch mean).

        With several processes each rank computes blocks rank, rank + N, ... of the batch, weighted
        by the *whole* batch's token count; DistributedDataParallel averages the gradients over the
        N ranks, so each rank's loss is scaled by N and the sum is the one-process gradient exactly.
        """
        valid = self.valid_tokens[idx]
        batch_tokens = valid.sum()
        if self.ddp is not None:
            return self._forward_backward_shard(idx, valid, batch_tokens, real)
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

    def _forward_backward_shard(self, idx, valid, batch_tokens, real) -> torch.Tensor:
        """This rank's share of the batch. Every rank runs the same number of micro-batches (DDP syncs on the
        last one's backward), so a short share is filled with a block of weight zero."""
        n = self.world_size
        per_rank = -(-idx.numel() // n)
        positions = torch.arange(per_rank, device=idx.device) * n + self.rank
        present = positions < real                    # past the real blocks: filler, weight zero
        positions = positions.clamp(max=idx.numel() - 1)
        mine = idx[positions]
        weights = torch.where(present, valid[positions], 0) / batch_tokens
        total = torch.zeros((), device=self.device)
        chunks = list(range(0, per_rank, self.micro.size))
        for k, start in enumerate(chunks):
            end = start + self.micro.size
            sync = k == len(chunks) - 1
            with contextlib.nullcontext() if sync else self.ddp.no_sync():  # gradients all-reduced on the last only
                with self.accelerator.autocast():
                    chunk = mine[start:end]
                    # per-block mean losses, so each block can carry its own weight
                    out = self.forward(input_ids=self.inputs[chunk], use_cache=False)
                    losses = _block_losses(out.logits, self.labels[chunk])
                    loss = (losses * weights[start:end]).sum()
                (loss * n).backward()
            total += loss.detach().float()
        return all_sum(total)  # the batch's loss on every rank, so they agree on "finite" (no host sync)

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
        if self.forward not in (self.model, self.ddp):
            opts.append("torch.compile (fixed batch shapes: one compile, timed as its own phase)")
        opts.append(f"loss read back every {self.cfg.log_every} steps")
        if self.cuda and self.fused and self.causal and self.cfg.log_every > 1:
            opts.append("no per-step host sync (only at log steps)")
        if self.ddp is not None:
            backend = "NCCL" if self.cuda else "gloo"
            opts.append(f"data-parallel over {self.world_size} processes (DistributedDataParallel, {backend})")
        if oom_retries:
            opts.append(f"micro-batches of {self.micro.size} after {oom_retries} out-of-memory retries")
        return opts


def _block_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss of each block (its real tokens only): what model(labels=...) gives for one block.

    The labels are shifted, not the logits (as transformers' own loss does), so the full-vocabulary
    logits are not copied.
    """
    blocks, length, vocab = logits.shape
    targets = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=-100)
    per_token = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab).float(), targets.reshape(-1),
                                                  ignore_index=-100, reduction="none").view(blocks, length)
    counts = (targets != -100).sum(dim=1)
    return per_token.sum(dim=1) / counts.clamp(min=1)


def checkpoint_weights(model) -> dict:
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
    w = world()
    ddp = None
    if w.distributed:  # torch's DistributedDataParallel all-reduces the gradients; llmlab only shards the batch
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
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
    scheduler = make_scheduler(optimizer, total_steps=steps_per_epoch * cfg.epochs, warmup=cfg.warmup,
                               min_lr_ratio=cfg.min_lr_ratio, schedule=cfg.schedule)
    session = Session(
        cfg=cfg, model=model, forward=torch.compile(ddp or model) if cfg.compile else (ddp or model), optimizer=optimizer,
        scheduler=scheduler, accelerator=accelerator, inputs=inputs, labels=labels,
        valid_tokens=(labels[:, 1:] != -100).sum(dim=1), eval_inputs=eval_inputs,
        eval_labels=eval_labels, n_blocks=n_blocks, steps_per_epoch=steps_per_epoch,
        generator=torch.Generator(device=device).manual_seed(cfg.seed),
        micro=HalvingSize(cfg.micro_batch_size or cfg.batch_size, "out of memory even with one sequence per micro-batch; "
                          "lower --block-size or use a smaller --model-size"),
        fused=fused, causal=causal, attention=str(getattr(model.config, "_attn_implementation", "")), bf16=bf16, tf32=tf32,
        pad_block=pad_block, ddp=ddp, rank=w.rank, world_size=w.size,
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
                         "order": torch.tensor(state["order"], device=device), "eval_losses": state["eval_losses"],
                         "best_eval": state.get("best_eval"), "since_best": state.get("since_best", 0)}
        emit(Resume(step=state["step"], epoch=state["epoch"], checkpoint=str(resume_from)))
    return session
