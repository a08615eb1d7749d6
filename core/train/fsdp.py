"""`--fsdp`: the model sharded over the ranks with torch's FSDP2 (`torch.distributed.fsdp.fully_shard`).

llmlab writes no sharding engine. What this module decides, once for pretraining and fine-tuning:

- **what a shard unit is**: each transformer block, found by the class names the model declares in
  `_no_split_modules` (GPT2Block, Qwen2DecoderLayer, LlamaDecoderLayer, ...), then the root (the
  embeddings, the final norm and the output layer). A block's parameters are gathered just before
  its forward and freed after it, so a rank holds one block whole at a time and 1/N of the rest;
- **precision**: on a GPU with bf16, FSDP's MixedPrecisionPolicy computes in bf16 and reduces
  gradients in fp32; the parameters themselves stay fp32 (on CPU everything is fp32);
- **checkpoints**: `ShardedState` writes and reads the model's and the optimizer's state with
  `torch.distributed.checkpoint`, every rank its own shard. A checkpoint written by N ranks loads on
  M ranks, or on one process with the model whole (DCP reshards on load);
- **the final folder**: `full_state_dict` gathers the whole state on rank 0 (on the CPU, one tensor at
  a time), which rank 0 then writes as a normal Hugging Face folder.

Gradient accumulation: DDP skips the all-reduce on all but the last micro-batch (`no_sync`), but
FSDP would then have to keep whole gradients, which is what it is there to avoid, so with FSDP every
micro-batch's gradients are reduce-scattered at once (`micro_batch_sync`).
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import torch

from core.checkpoints import SHARDED_DIR  # noqa: F401 (where ShardedState's folder goes)
from core.errors import UsageError


def block_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's transformer blocks: modules whose class the model names in `_no_split_modules`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or ())
    blocks = [m for m in base.modules() if type(m).__name__ in names]
    if not blocks:
        raise UsageError(f"--fsdp cannot find the transformer blocks of this {type(base).__name__} (it names none in "
                         f"_no_split_modules); drop --fsdp and use --processes alone (data-parallel)")
    return blocks


def shard(model: torch.nn.Module, root: torch.nn.Module | None = None, bf16: bool = False) -> torch.nn.Module:
    """Shard `model` over the ranks in place: each block, then `root` (the module the loss is computed through,
    `model` itself by default), which takes what no block holds. Returns the root."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else MixedPrecisionPolicy()
    for block in block_modules(model):
        fully_shard(block, mp_policy=policy)
    root = root if root is not None else model
    fully_shard(root, mp_policy=policy)
    return root


def is_sharded(module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def micro_batch_sync(wrapper, last: bool):
    """The context a micro-batch's backward runs in: DDP all-reduces only on the last one; FSDP reduce-scatters
    every one (see the module's docstring)."""
    if last or wrapper is None or is_sharded(wrapper):
        return contextlib.nullcontext()
    return wrapper.no_sync()


def local_numel(module: torch.nn.Module) -> int:
    """The parameter elements this rank holds (its shards with FSDP, everything without)."""
    return sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in module.parameters())


def full_state_dict(module: torch.nn.Module, trainable_only: bool = False) -> dict:
    """The module's whole state on rank 0, on the CPU (empty on the other ranks). A collective: every rank calls it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=trainable_only)
    return get_model_state_dict(module, options=options)


class ShardedState:
    """What a sharded checkpoint keeps: `module`'s state (its trainable parameters only with `trainable_only`, as
    for a LoRA adapter over a frozen base) and the optimizer's, through torch.distributed.checkpoint.

    Used whenever a run has --fsdp, also when it is resumed on one process, so one run's checkpoints all
    have one format.
    """

    def __init__(self, module: torch.nn.Module, trainable_only: bool = False) -> None:
        self.module, self.trainable_only = module, trainable_only

    def _state(self, optimizer) -> dict:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        model, optim = get_state_dict(self.module, optimizer, options=StateDictOptions(ignore_frozen_params=self.trainable_only))
        return {"model": model, "optimizer": optim}

    def save(self, folder: Path, optimizer) -> None:
        """Every rank writes its shards into `folder` (rank 0 also the metadata); files are fsynced."""
        import torch.distributed.checkpoint as dcp

        with _one_process_is_fine():
            dcp.save(self._state(optimizer), checkpoint_id=str(folder))

    def load(self, folder: Path, optimizer) -> None:
        """Put `folder`'s state into the module and the optimizer, whatever number of ranks wrote it."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        state = self._state(optimizer)
        with _one_process_is_fine():
            dcp.load(state, checkpoint_id=str(folder))
        set_state_dict(self.module, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"],
                       options=StateDictOptions(ignore_frozen_params=self.trainable_only))


@contextlib.contextmanager
def _one_process_is_fine():
    """DCP warns that it assumes one process when no process group exists; that is what a one-process resume is."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*assuming the intent is to .* in a single process.*")
        yield


__all__ = ["SHARDED_DIR", "block_modules", "shard", "is_sharded", "micro_batch_sync", "local_numel", "full_state_dict",
           "ShardedState"]
