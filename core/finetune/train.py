"""LoRA training on the shared loop (core/train/loop.py): loss on the target tokens only, the best adapter kept.

Examples are tokenized once (prompt tokens get label -100, so only the answer is learned; EOS
closes every target) and padded per batch on the right with an attention mask. `AdapterTask` is
what the loop trains: batches of examples, their target-token loss, the val loss, and the adapter's
weights for checkpoints. Speed-ups: the output layer runs on the target positions only
(target_loss); and, named in the summary only when active, bf16 autocast on a GPU with the frozen
base in bf16, fused AdamW over the adapter's parameters, gradient checkpointing as a memory switch,
micro-batches halved on out-of-memory (same effective batch). The loop also skips non-finite steps
and stops the run after too many in a row, as it does for pretraining.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from core.distributed import all_sum, world
from core.errors import OutOfMemory
from core.memory import OOM_ERRORS, HalvingSize
from core.optim import adamw, make_scheduler
from core.train.fsdp import ShardedState, is_sharded, micro_batch_sync
from core.train.fsdp import shard as fsdp_shard
from core.train.loop import Hooks, LoopResult, LoopSettings, planned_steps
from core.train.loop import train as train_loop
from core.train.losses import linear_cross_entropy, output_layer
from core.train.tokens import batch_ids


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]          # -100 on the prompt: no loss there


def encode(tokenizer, rows: list[dict], max_length: int, chat: bool = False) -> tuple[list[Example], int]:
    """(examples, how many lost the start of their prompt to fit max_length); the target is never cut.

    `chat`: each row's `user` text and `target` are the user and assistant turns of the tokenizer's chat template
    (core/lm/chat.py); the assistant's tokens, its end-of-turn included, are the target.
    """
    eos = tokenizer.eos_token_id
    if chat:
        from core.lm.chat import chat_ids

        pairs = [chat_ids(tokenizer, r["user"], r["target"]) for r in rows]
        prompts, targets = [p for p, _ in pairs], [t for _, t in pairs]
    else:
        prompts = batch_ids(tokenizer, [r["prompt"] for r in rows], add_special_tokens=True)
        targets = [t + [eos] for t in batch_ids(tokenizer, [r["target"] for r in rows], add_special_tokens=False)]
    out, cut = [], 0
    for p, t in zip(prompts, targets):
        t = t[: max_length - 1]
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


# Target positions in a micro-batch above which the loss goes through the output layer chunk by chunk: an exam's
# answer letters are a few per example, where one small product is cheapest; a batch of math solutions is
# thousands, and over Qwen's 151,936-token vocabulary their fp32 logits would take gigabytes.
CHUNKED_LOSS_FROM = 512


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
    positions, targets = hidden[:, :-1][keep], labels[keep]
    weight = output_layer(base) if positions.shape[0] > CHUNKED_LOSS_FROM else None
    if weight is not None and type(weight) is torch.nn.Parameter:  # (not an FSDP-sharded DTensor)
        # many target positions (long answers: math solutions): a chunk of logits at a time, never all of them
        return linear_cross_entropy(positions, weight, targets)
    logits = base.get_output_embeddings()(positions).float()
    return F.cross_entropy(logits, targets)


class _TargetLoss(torch.nn.Module):
    """target_loss as a module: what DistributedDataParallel wraps to average the adapter's gradients, and FSDP's root
    (the embeddings and the output layer are used outside the model's own forward, so they are gathered here)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels):
        return target_loss(self.model, {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels})


def _batch_loss(model, ddp, batch: list[Example], micro: int, pad_id: int, device, autocast) -> torch.Tensor:
    """Backward through one batch in micro-batches weighted by target tokens; returns the batch's mean loss.

    With several processes (`ddp`: the DistributedDataParallel or FSDP wrapper), each rank takes
    examples rank, rank + N, ... of the batch, weighted by the whole batch's target tokens and scaled
    by N (both average over ranks), so the gradient is the one-process gradient. Every rank runs the
    same number of micro-batches; a short share is filled with an example of weight zero.
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
        with micro_batch_sync(ddp, last=k == len(starts) - 1):  # DDP: all-reduce on the last only
            with autocast():
                # a chunk's loss is its own target-token mean, fillers left out; a fillers-only chunk
                # still runs (weight 0) so every rank does the same backward passes
                loss = ddp(**collate(real or [chunk[0][0]], pad_id, device))
            (loss * weight * w.size).backward()
        total += loss.detach().float() * weight
    return all_sum(total)


FILLER = Example([0, 0], [-100, -100])  # an example with nothing to learn, for a rank with no share left


def _targets(examples: list[Example]) -> int:
    """Predicted tokens: labels that are not -100, less the first position (never a target after the shift)."""
    return sum(sum(1 for x in e.labels[1:] if x != -100) for e in examples)


@torch.no_grad()
def mean_loss(model, examples: list[Example], batch_size: int, pad_id: int, autocast, sharded_root=None) -> float | None:
    """Mean loss over every target token of `examples`; halves its batch on out-of-memory.

    `sharded_root`: the FSDP root the loss goes through (--fsdp). Its forwards gather shards on every
    rank, so the ranks run the same forwards: a short share is filled with an example that counts nothing.
    """
    if not examples:
        return None
    w = world()
    per_rank = -(-len(examples) // w.size)
    examples = list(examples[w.rank::w.size])  # with several processes each scores every N-th example; sums added below
    fillers = per_rank - len(examples) if sharded_root is not None else 0
    model.eval()
    size = HalvingSize(batch_size, "out of memory computing the val loss even one example at a time; lower --max-length")
    device = next(model.parameters()).device
    try:
        while True:
            total, count = 0.0, 0
            try:
                for i in range(0, len(examples) + fillers, size.size):
                    chunk = examples[i:i + size.size]
                    n = _targets(chunk)
                    with autocast():
                        if sharded_root is None:
                            loss = target_loss(model, collate(chunk, pad_id, device))
                        else:  # a filler-only batch runs too, for its gathers
                            loss = sharded_root(**collate(chunk or examples[:1] or [FILLER], pad_id, device))
                    if n:
                        total, count = total + float(loss) * n, count + n  # note: a host sync per batch, eval only
                break
            except OOM_ERRORS:
                if sharded_root is not None:  # the ranks must run the same forwards, so one cannot halve alone
                    raise OutOfMemory(f"out of memory on rank {w.rank} computing the val loss; lower --batch-size or "
                                      f"--max-length") from None
                size.halve()
    finally:
        model.train()
    if w.distributed:
        sums = all_sum(torch.tensor([total, float(count)], device=device))
        total, count = float(sums[0]), int(sums[1])
    return total / max(count, 1)


class AdapterTask:
    """The shared loop's TrainTask for a peft model: examples in, the adapter's gradients out."""

    item_noun = "training examples"
    unit = "example"
    shrink_hint = "lower --max-length or --rank"
    check_noun = "val loss"
    order_device = torch.device("cpu")  # examples are Python lists; their order is drawn on the host

    def __init__(self, model, train: list[Example], val: list[Example], batch_size: int, pad_id: int, autocast,
                 fsdp: bool = False, bf16: bool = False) -> None:
        """`fsdp`: the run has --fsdp. With several processes the frozen base is then sharded (FSDP2) and the adapter
        trains over the shards; its checkpoints are sharded on any number of processes."""
        self.model, self.train, self.val = model, train, val
        self.batch_size, self.pad_id, self.autocast = batch_size, pad_id, autocast
        self.device = next(model.parameters()).device
        self.n_items = len(train)
        self.ddp = None  # the wrapper that spreads the loss over the ranks: DistributedDataParallel or the FSDP root
        loss_module = _TargetLoss(model)
        if fsdp and world().distributed:
            self.ddp = fsdp_shard(model, root=loss_module, bf16=bf16)
        elif world().distributed:  # torch's DistributedDataParallel averages the adapter's gradients over the ranks
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(loss_module,
                                               device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.sharded_state = ShardedState(loss_module, trainable_only=True) if fsdp else None

    @property
    def sharded(self) -> bool:
        return self.ddp is not None and is_sharded(self.ddp)

    def batch(self, order: torch.Tensor, i: int, micro: int) -> list[Example]:
        return [self.train[j] for j in order[i * self.batch_size:(i + 1) * self.batch_size].tolist()]

    def forward_backward(self, batch: list[Example], micro: int):
        loss = _batch_loss(self.model, self.ddp, batch, micro, self.pad_id, self.device, self.autocast)
        return loss, _targets(batch)

    def evaluate(self, micro: int) -> float | None:
        return mean_loss(self.model, self.val, micro, self.pad_id, self.autocast, self.ddp if self.sharded else None)

    def weights(self) -> dict:
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(self.model)

    def load_weights(self, weights: dict, path: Path) -> None:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(self.model, weights)


def train_adapter(model, train: list[Example], val: list[Example], cfg, *, pad_id: int, hooks: Hooks,
                  resume_from: Path | None = None, autocast=None, bf16: bool = False,
                  on_task=None) -> tuple[LoopResult, bool]:
    """Train the adapter of peft `model` for cfg.epochs on the shared loop; (its result, whether AdamW was fused).

    `hooks.on_best()` is called whenever the val loss improves; `on_task(task)` once the task is made
    (the model is sharded by then with --fsdp).
    """
    from contextlib import nullcontext

    task = AdapterTask(model, train, val, cfg.batch_size, pad_id, autocast or nullcontext, fsdp=cfg.fsdp, bf16=bf16)
    if on_task is not None:
        on_task(task)
    optimizer, fused = adamw(model, cfg.lr, cfg.weight_decay, fused=task.device.type == "cuda", betas=(0.9, 0.999))
    total_steps = planned_steps(len(train), cfg.batch_size, cfg.epochs, cfg.max_steps)
    scheduler = make_scheduler(optimizer, total_steps=total_steps, warmup=cfg.warmup_ratio, min_lr_ratio=0.1)
    settings = LoopSettings(epochs=cfg.epochs, batch_size=cfg.batch_size, micro_batch_size=cfg.micro_batch_size,
                            log_every=cfg.log_every, grad_clip=cfg.grad_clip, max_nonfinite=cfg.max_nonfinite,
                            save_every=cfg.save_every, save_minutes=cfg.save_minutes, eval_every=cfg.eval_every,
                            early_stop=cfg.early_stop, seed=cfg.seed, max_steps=cfg.max_steps)
    model.train()
    return train_loop(task, optimizer, scheduler, settings, hooks, fused=fused, resume_from=resume_from), fused
