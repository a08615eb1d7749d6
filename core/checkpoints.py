"""Crash-safe training checkpoints, for every kind that trains (pretraining, fine-tuning).

A checkpoint is a folder `checkpoints/step-000123/` holding the trained weights (safetensors:
the whole model for pretraining, only the adapter for LoRA), optimizer and scheduler state, RNG
states and the data position. It is written under a temporary name, fsynced, given a COMPLETE
marker and only then renamed into place, so a checkpoint that exists under its final name is
whole; torn ones are never loaded. The newest two are kept.

With --fsdp no rank holds the whole model, so weights and optimizer state go to `sharded/`, a
torch.distributed.checkpoint folder that every rank writes its shard of (`sharded`, a
core.train.fsdp.ShardedState, does the writing); rank 0 writes the rest and renames the folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

MARKER = "COMPLETE"
KEEP = 2
SHARDED_DIR = "sharded"  # the torch.distributed.checkpoint folder of a checkpoint written with --fsdp


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(run_dir: Path, weights: dict | None, optimizer, scheduler, state: dict, sharded=None) -> Path:
    """Write one checkpoint atomically and prune all but the newest KEEP; `weights` maps names to tensors.

    With `sharded` (weights None) every rank calls this: each writes its shard, rank 0 the rest.
    """
    from core.distributed import barrier, world

    main = world().main
    root = run_dir / "checkpoints"
    final = root / f"step-{state['step']:06d}"
    # With shards every rank writes into one folder, so its name is the same on every rank.
    tmp = root / (f".tmp-step-{state['step']:06d}" + ("" if sharded is not None else f"-{os.getpid()}"))
    if main:
        root.mkdir(exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    try:
        if sharded is not None:
            barrier()  # the folder exists before any rank writes into it
            sharded.save(tmp / SHARDED_DIR, optimizer)  # a collective; raises on every rank if one rank failed
        if not main:
            return final
        _write_files(tmp, weights, optimizer, scheduler, state)
    except BaseException:
        if main:
            shutil.rmtree(tmp, ignore_errors=True)  # a full disk must not also keep half a checkpoint
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    for old in list_checkpoints(run_dir)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _write_files(tmp: Path, weights: dict | None, optimizer, scheduler, state: dict) -> None:
    """The checkpoint's files on rank 0; `weights` None: the sharded folder holds weights and optimizer state."""
    from safetensors.torch import save_file

    if weights is not None:
        save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(tmp / "model.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(state.pop("rng"), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")
    for f in tmp.iterdir():
        if f.is_file():  # (torch.distributed.checkpoint fsyncs its own files)
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    (tmp / MARKER).write_text("ok\n")
    _fsync_dir(tmp)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first; temporary or marker-less folders are ignored."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / MARKER).exists()]
    return sorted(done, key=lambda p: p.name)


def checkpoint_problem(path: Path) -> str | None:
    """Why a complete-looking checkpoint cannot be loaded (damaged files), or None when it looks sound.

    Cheap: the safetensors header is parsed and checked against the file size, the torch files'
    zip directories are read and state.json is parsed; no tensor is loaded.
    """
    import zipfile

    from safetensors import safe_open

    sharded = (path / SHARDED_DIR).is_dir()
    if sharded:
        problem = sharded_checkpoint_problem(path / SHARDED_DIR)
        if problem:
            return problem
    else:
        try:
            with safe_open(str(path / "model.safetensors"), "pt") as fh:
                if not list(fh.keys()):
                    return "model.safetensors holds no tensors"
        except Exception as exc:  # SafetensorError or OSError
            return f"model.safetensors: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    for name in ("scheduler.pt", "rng.pt") if sharded else ("optimizer.pt", "scheduler.pt", "rng.pt"):
        if not zipfile.is_zipfile(path / name):
            return f"{name} is missing or damaged"
    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        missing = [k for k in ("step", "epoch", "next_index", "order", "eval_losses") if k not in state]
    except (OSError, ValueError) as exc:
        return f"state.json is unreadable ({exc})"
    return f"state.json lacks {', '.join(missing)}" if missing else None


def load_checkpoint(path: Path, optimizer, scheduler, sharded=None) -> tuple[dict, dict]:
    """(the saved weights, the saved state with `rng`); optimizer and scheduler are restored in place.

    A sharded checkpoint goes straight into `sharded`'s module and the optimizer (the weights returned are
    then empty); it loads on any number of ranks, one included.
    """
    from safetensors.torch import load_file

    if (path / SHARDED_DIR).is_dir() != (sharded is not None):
        raise ValueError(f"{path.name} was written {'with' if sharded is None else 'without'} --fsdp, and this run "
                         f"{'has' if sharded is not None else 'does not have'} it")
    if sharded is not None:
        weights = {}
        sharded.load(path / SHARDED_DIR, optimizer)
    else:
        weights = load_file(str(path / "model.safetensors"))
        # weights_only=True: a checkpoint is data, never code to run.
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu"))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    state["rng"] = torch.load(path / "rng.pt", weights_only=True)
    return weights, state


def sharded_checkpoint_problem(folder: Path) -> str | None:
    """Why a sharded checkpoint folder cannot be loaded (its metadata unreadable, a shard file missing or cut
    short), or None. Cheap: only the metadata is read and the files' sizes compared with it."""
    from torch.distributed.checkpoint import FileSystemReader

    try:
        metadata = FileSystemReader(str(folder)).read_metadata()
    except Exception as exc:  # a missing or damaged .metadata
        return f"{folder.name}/.metadata: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    needed: dict[str, int] = {}
    for info in (metadata.storage_data or {}).values():
        end = int(info.offset) + int(info.length)
        needed[info.relative_path] = max(needed.get(info.relative_path, 0), end)
    for name, size in sorted(needed.items()):
        path = folder / name
        if not path.is_file():
            return f"{folder.name}/{name} is missing"
        if path.stat().st_size < size:
            return f"{folder.name}/{name} is cut short ({path.stat().st_size} of {size} bytes)"
    return None


def rng_state(generator: torch.Generator) -> dict:
    """Every random stream a resumed run must continue: torch's, the data order's, CUDA's."""
    state = {"torch": torch.get_rng_state(), "data": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(generator: torch.Generator, state: dict) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def resume_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a stopped run continues from: its newest complete one, checked; else one UsageError saying why not."""
    from core.errors import UsageError
    from core.runs import SUMMARY, read_json

    run_dir = Path(run_dir)
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        if (read_json(run_dir / SUMMARY) or {}).get("status") == "completed":
            raise UsageError(f"{run_dir} already completed, so there is nothing left to resume (and it keeps no complete "
                             f"checkpoint to resume from); start a new run to train again")
        raise UsageError(f"{run_dir} has no complete checkpoint to resume from; start a new run")
    problem = checkpoint_problem(checkpoints[-1])
    if problem:
        older = (f"delete {checkpoints[-1]} to resume from {checkpoints[-2].name}" if len(checkpoints) > 1
                 else "there is no older checkpoint; start a new run")
        raise UsageError(f"checkpoint {checkpoints[-1].name} of {run_dir} is damaged ({problem}); {older}")
    return checkpoints[-1]

