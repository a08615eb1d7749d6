"""What pretraining gives the shared training loop (core/train/loop.py), set up once: device, data on it,
optimizer, schedule, compile.

`prepare()` builds a Session, the loop's TrainTask for GPT-2 on packed token blocks: its batches are
index lookups into blocks resident on the device (or, for a corpus larger than memory, blocks read
from the memory-mapped token shards, `mapped`), `forward_backward` runs them in micro-batches
weighted by their real tokens, `step()` is one optimizer step with no host sync in it, and
`optimizations()` names the speed-ups the session really runs with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from core.distributed import all_sum, world
from core.optim import make_optimizer, make_scheduler
from core.pretrain.config import PretrainConfig
from core.pretrain.data import MappedBlocks
from core.pretrain.model import CAUSAL_ATTENTION, use_causal_attention
from core.train.fsdp import ShardedState, micro_batch_sync
from core.train.fsdp import shard as fsdp_shard
from core.train.loop import optimizer_step, planned_steps
from core.train.losses import causal_lm_loss, output_layer


def chunked_loss_on(setting: str, device: torch.device) -> bool:
    """--chunked-loss: `auto` turns it on where it measured faster (the CPU: bench/results/cpu/*chunked-loss*), and
    off on a GPU until bench/gpu_check.sh has measured it there."""
    return setting == "on" or (setting == "auto" and device.type == "cpu")


def count_steps_per_epoch(n_blocks: int, batch_size: int) -> int:
    """Optimizer steps in one epoch: the last batch may be short, but it is a step (no block is dropped)."""
    return -(-n_blocks // batch_size)


@dataclass
class Session:
    """Everything the loop works on, made once by prepare(); the shared loop's TrainTask."""

    item_noun = "blocks of training tokens"
    unit = "sequence"
    shrink_hint = "lower --block-size or use a smaller --model-size"
    check_noun = "held-out loss"

    cfg: PretrainConfig
    model: torch.nn.Module
    forward: Callable                 # the model, or its torch.compile wrapper
    optimizer: torch.optim.Optimizer
    scheduler: object
    accelerator: object
    inputs: torch.Tensor              # (n_blocks [+1 all-masked block], T) on the device; empty when `mapped`
    labels: torch.Tensor
    valid_tokens: torch.Tensor        # predicted tokens per block (labels that are not -100)
    eval_inputs: torch.Tensor
    eval_labels: torch.Tensor
    n_blocks: int
    steps_per_epoch: int
    micro_size: int                   # sequences per forward pass (the loop halves it on out-of-memory)
    fused: bool
    causal: bool                      # the mask-free causal attention path is in use
    attention: str                    # the attention implementation the loop trains with
    bf16: bool
    tf32: bool
    pad_block: int | None             # index of the all-masked block that fills short batches (compile only)
    ddp: object = None                # the DistributedDataParallel wrapper with several processes, else None
    rank: int = 0
    world_size: int = 1
    fsdp: bool = False                # the model is sharded over the ranks (FSDP2)
    sharded_state: ShardedState | None = None  # --fsdp: checkpoints are sharded (also on one process)
    mapped: MappedBlocks | None = None  # the blocks, read from memory-mapped shards per batch (not resident)
    body: Callable | None = None      # --chunked-loss: the model without its output layer (or its compile wrapper)
    head_weight: torch.Tensor | None = None  # ... and the output layer's weight (tied to the token embedding)

    @property
    def device(self) -> torch.device:
        return self.inputs.device

    @property
    def order_device(self) -> torch.device:
        # the order indexes blocks resident on the device, or (mapped) blocks the host reads
        return torch.device("cpu") if self.mapped is not None else self.inputs.device

    def _blocks(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, labels) of these blocks on the device."""
        if self.mapped is None:
            return self.inputs[idx], self.labels[idx]
        inputs, labels = self.mapped.take(idx.numpy())
        return (torch.from_numpy(inputs).to(self.device, non_blocking=True),
                torch.from_numpy(labels).to(self.device, non_blocking=True))

    def _valid(self, idx: torch.Tensor) -> torch.Tensor:
        if self.mapped is None:
            return self.valid_tokens[idx]
        return torch.from_numpy(self.mapped.valid(idx.numpy())).to(self.device)

    @property
    def n_items(self) -> int:
        return self.n_blocks

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def batch(self, order: torch.Tensor, i: int, micro: int | None = None) -> tuple[torch.Tensor, int]:
        """(block indices of step i of an epoch, how many of them are real blocks).

        Under compile a short last batch is filled up with the all-masked block, so every forward
        has the same shape; the filler carries no label, so no row counts twice.
        """
        bs, micro = self.cfg.batch_size, micro or self.micro_size
        real = min(bs, self.n_blocks - i * bs)
        idx = order[i * bs:i * bs + real]
        if self.pad_block is not None:
            width = -(-bs // micro) * micro  # whole micro-batches
            if width > real:
                idx = torch.cat([idx, idx.new_full((width - real,), self.pad_block)])
        return idx, real

    @property
    def main(self) -> bool:
        return self.rank == 0

    def forward_backward(self, batch: tuple[torch.Tensor, int], micro: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss of one batch, its predicted tokens), in micro-batches weighted by their real tokens (exactly the
        full-batch mean); both stay on the device.

        With several processes each rank computes blocks rank, rank + N, ... of the batch, weighted
        by the *whole* batch's token count; DistributedDataParallel averages the gradients over the
        N ranks, so each rank's loss is scaled by N and the sum is the one-process gradient exactly.
        """
        idx, real = batch
        micro = micro or self.micro_size
        valid = self._valid(idx)
        batch_tokens = valid.sum()  # filler blocks count zero
        if self.ddp is not None or self.fsdp:
            return self._forward_backward_shard(idx, valid, batch_tokens, real, micro), batch_tokens
        total = torch.zeros((), device=self.device)
        for k, chunk in enumerate(idx.split(micro)):
            if k * micro >= real:  # only filler blocks left: nothing to learn from, skip the compute
                break
            with self.accelerator.autocast():
                inputs, labels = self._blocks(chunk)
                loss = self.micro_loss(inputs, labels)
            weight = valid[k * micro:(k + 1) * micro].sum() / batch_tokens
            (loss * weight).backward()
            total += loss.detach().float() * weight
        return total, batch_tokens

    def micro_loss(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The mean next-token loss of some blocks: through the chunked output layer (core/train/losses.py), or the
        model's own loss over its full logits."""
        if self.body is not None:
            return causal_lm_loss(self.body, self.head_weight, inputs, labels)
        return self.forward(input_ids=inputs, labels=labels, use_cache=False).loss

    def _forward_backward_shard(self, idx, valid, batch_tokens, real, micro: int) -> torch.Tensor:
        """This rank's share of the batch. Every rank runs the same number of micro-batches (DDP syncs on the
        last one's backward, FSDP gathers every block in every forward), so a short share is filled with a block
        of weight zero."""
        n = self.world_size
        per_rank = -(-idx.numel() // n)
        positions = torch.arange(per_rank, device=idx.device) * n + self.rank
        present = (positions < real).to(valid.device)  # past the real blocks: filler, weight zero
        positions = positions.clamp(max=idx.numel() - 1)
        mine = idx[positions]
        weights = torch.where(present, valid[positions], 0) / batch_tokens
        total = torch.zeros((), device=self.device)
        chunks = list(range(0, per_rank, micro))
        for k, start in enumerate(chunks):
            end = start + micro
            sync = k == len(chunks) - 1
            with micro_batch_sync(self.ddp, last=sync):  # DDP: gradients all-reduced on the last only
                with self.accelerator.autocast():
                    chunk = mine[start:end]
                    # per-block mean losses, so each block can carry its own weight
                    inputs, labels = self._blocks(chunk)  # only this rank's blocks are read
                    out = self.forward(input_ids=inputs, use_cache=False)
                    losses = _block_losses(out.logits, labels)
                    loss = (losses * weights[start:end]).sum()
                (loss * n).backward()
            total += loss.detach().float()
        return all_sum(total)  # the batch's loss on every rank, so they agree on "finite" (no host sync)

    def step(self, idx: torch.Tensor, real: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on these blocks, the shared loop's own (tests run it alone): (loss, finite), on the device."""
        loss, _, finite = optimizer_step(self, (idx, real), self.micro_size, self.optimizer, self.scheduler,
                                         self.cfg.grad_clip, self.fused)
        return loss, finite

    @torch.no_grad()
    def evaluate(self, micro: int | None = None) -> float | None:
        """The mean next-token loss on the held-out blocks."""
        from core.pretrain.train import evaluate_loss

        return evaluate_loss(self.model, self.eval_inputs, self.eval_labels, micro or self.micro_size,
                             self.accelerator.autocast, chunked=self.body is not None)

    def weights(self) -> dict:
        return checkpoint_weights(self.model)

    def load_weights(self, weights: dict, path: Path) -> None:
        _load_weights(self.model, weights, path)

    def optimizations(self, oom_retries: int = 0, micro: int | None = None) -> list[str]:
        """The speed-ups this session really runs with, from its resolved state."""
        attn = self.attention
        opts = ["packed token blocks (no padding)"]
        if self.bf16 and not self.fsdp:
            opts.append("bf16 autocast (accelerate)")
        if self.tf32:
            opts.append("TF32 matmuls")
        if attn == CAUSAL_ATTENTION:
            opts.append("SDPA causal kernel with no attention mask (no mask building, no packed-sequence check)")
        elif attn:
            opts.append(f"{attn} attention")
        if self.mapped is not None:
            opts.append("token blocks read from memory-mapped token shards per batch (memory does not grow with the corpus)")
        else:
            opts.append(f"data resident on {self.device.type}")
        if self.cfg.optimizer_used == "muon":
            opts.append("Muon (torch.optim.Muon) on the blocks' matrices, AdamW on embeddings, norms and biases")
        if self.fused:
            opts.append("fused AdamW")
        if self.forward not in (self.model, self.ddp):
            opts.append("torch.compile (fixed batch shapes: one compile, timed as its own phase)")
        if self.body is not None:
            opts.append("cross-entropy through the output layer 128 positions at a time (no full-vocabulary logits)")
        opts.append(f"loss read back every {self.cfg.log_every} steps")
        if self.cuda and self.fused and self.causal and self.cfg.log_every > 1:
            opts.append("no per-step host sync (only at log steps)")
        backend = "NCCL" if self.cuda else "gloo"
        if self.ddp is not None:
            opts.append(f"data-parallel over {self.world_size} processes (DistributedDataParallel, {backend})")
        if self.fsdp:
            opts.append(f"model sharded over {self.world_size} processes (FSDP2 fully_shard per transformer block, "
                        f"{backend}){'; bf16 compute, fp32 gradient reduction' if self.bf16 else ''}")
        if oom_retries:
            opts.append(f"micro-batches of {micro or self.micro_size} after {oom_retries} out-of-memory retries")
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


def prepare(model, train_blocks, eval_blocks, cfg: PretrainConfig) -> Session:
    """Device, data on it, optimizer, schedule and compile: everything before the first step."""
    from accelerate import Accelerator

    cuda = torch.cuda.is_available()
    bf16 = cfg.bf16 and cuda and torch.cuda.is_bf16_supported()
    w = world()
    fsdp = cfg.fsdp and w.distributed
    # With FSDP its own mixed-precision policy computes in bf16 (set where the model is sharded), not autocast.
    accelerator = Accelerator(mixed_precision="bf16" if bf16 and not fsdp else "no", cpu=not cuda)
    device = accelerator.device
    tf32 = cuda and cfg.tf32
    if tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    causal = use_causal_attention(model)
    # The model is not passed through accelerator.prepare: on one device that would only add a
    # wrapper that casts logits back to fp32, one more full-vocabulary copy per step.
    model.to(device).train()
    ddp = None
    if fsdp:  # torch's FSDP2: each rank keeps 1/N of every block; the optimizer is made over the shards below
        fsdp_shard(model, bf16=bf16)
    elif w.distributed:  # torch's DistributedDataParallel all-reduces the gradients; llmlab only shards the batch
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    mapped = train_blocks if isinstance(train_blocks, MappedBlocks) else None
    if mapped is not None:
        inputs = labels = torch.zeros((0, mapped.block_size), dtype=torch.long, device=device)
        n_blocks = mapped.n_blocks
    else:
        inputs, labels = (t.to(device) for t in train_blocks)
        n_blocks = inputs.shape[0]
    pad_block = None
    if cfg.compile:  # one all-masked block at the end fills short batches (Session.batch); MappedBlocks has its own
        pad_block = n_blocks
        if mapped is None:
            inputs = torch.cat([inputs, inputs[:1]])
            labels = torch.cat([labels, torch.full_like(labels[:1], -100)])
    eval_inputs, eval_labels = (t.to(device) for t in eval_blocks)

    head = output_layer(model) if chunked_loss_on(cfg.chunked_loss, device) and not (ddp or fsdp) else None
    body = None if head is None else torch.compile(model.base_model) if cfg.compile else model.base_model
    optimizer, fused = make_optimizer(model, cfg.optimizer_used, cfg.lr, cfg.weight_decay, fused=cfg.fused_adamw)
    steps_per_epoch = count_steps_per_epoch(n_blocks, cfg.batch_size)
    scheduler = make_scheduler(optimizer, total_steps=planned_steps(n_blocks, cfg.batch_size, cfg.epochs, cfg.max_steps),
                               warmup=cfg.warmup, min_lr_ratio=cfg.min_lr_ratio, schedule=cfg.schedule)
    session = Session(
        cfg=cfg, model=model, forward=torch.compile(ddp or model) if cfg.compile else (ddp or model), optimizer=optimizer,
        scheduler=scheduler, accelerator=accelerator, inputs=inputs, labels=labels,
        valid_tokens=(labels[:, 1:] != -100).sum(dim=1), eval_inputs=eval_inputs,
        eval_labels=eval_labels, n_blocks=n_blocks, steps_per_epoch=steps_per_epoch,
        micro_size=cfg.micro_batch_size or cfg.batch_size, fused=fused, causal=causal,
        attention=str(getattr(model.config, "_attn_implementation", "")), bf16=bf16, tf32=tf32,
        pad_block=pad_block, ddp=ddp, rank=w.rank, world_size=w.size, fsdp=fsdp,
        sharded_state=ShardedState(model) if cfg.fsdp else None, mapped=mapped, body=body, head_weight=head,
    )
    return session
