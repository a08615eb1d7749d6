"""Crash-safe training checkpoints.

A checkpoint is a folder `checkpoints/step-000123/` holding the weights (safetensors), optimizer
and scheduler state, RNG states and the data position. It is written under a temporary name,
fsynced, given a COMPLETE marker and only then renamed into place, so a checkpoint that exists
under its final name is whole; torn ones are never loaded. The newest two are kept.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

MARKER = "COMPLETE"
KEEP = 2


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(run_dir: Path, model, optimizer, scheduler, state: dict) -> Path:
    """Write one checkpoint atomically and prune all but the newest KEEP."""
    from safetensors.torch import save_file

    root = run_dir / "checkpoints"
    root.mkdir(exist_ok=True)
    final = root / f"step-{state['step']:06d}"
    tmp = root / f".tmp-step-{state['step']:06d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    # GPT-2 ties lm_head to the token embedding; safetensors refuses shared storage, so the
    # tied copy is dropped here and restored by load_state_dict(strict=False) + tie_weights().
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(weights, str(tmp / "model.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(state.pop("rng"), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    (tmp / MARKER).write_text("ok\n")
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    for old in list_checkpoints(run_dir)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first; temporary or marker-less folders are ignored."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / MARKER).exists()]
    return sorted(done, key=lambda p: p.name)


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict:
    """Restore model/optimizer/scheduler in place; returns the saved state (with `rng`)."""
    from safetensors.torch import load_file

    weights = load_file(str(path / "model.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or any(k != "lm_head.weight" for k in missing):
        raise ValueError(f"checkpoint {path.name} does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.tie_weights()
    # weights_only=True: a checkpoint is data, never code to run.
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu"))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    state["rng"] = torch.load(path / "rng.pt", weights_only=True)
    return state
