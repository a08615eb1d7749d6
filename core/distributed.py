"""More than one process: who this process is, a few collectives, and the ranks' error files.

llmlab has no engine of its own here. torch's elastic launcher (what `torchrun` runs) starts the
processes (core/launch.py), DistributedDataParallel averages gradients, and torch.distributed's
collectives move the few objects ranks share: the run folder, stop decisions and gathered rows.
This module is the thin layer the run lifecycle and the loops use. With one process, every
function here is a no-op, and torch.distributed is not imported.

Only rank 0 writes the run folder's files (config, events, checkpoints, summary, report); the
other ranks write only `ranks/rank-N.error` when they fail, so rank 0 (or the launcher) can say
which rank failed and why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

RANKS_DIR = "ranks"


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world() -> World:
    """This process's place, from the variables torchrun (and llmlab's launcher) set."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return World()
    return World(rank=int(os.environ.get("RANK", "0")), size=size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def init() -> World:
    """Join the process group (NCCL on GPUs, gloo on CPU) once; returns this process's World."""
    w = world()
    if not w.distributed:
        return w
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            if w.local_rank >= torch.cuda.device_count():
                from core.errors import UsageError

                raise UsageError(f"rank {w.rank} wants GPU {w.local_rank}, but this machine has "
                                 f"{torch.cuda.device_count()}; start at most that many processes per machine")
            torch.cuda.set_device(w.local_rank)
        timeout = timedelta(seconds=float(os.environ.get("LLMLAB_DIST_TIMEOUT", "1800")))
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout)
    return w


def device():
    """The device this rank computes on: its own GPU, or the CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", world().local_rank)
    return torch.device("cpu")


def _dist():
    import torch.distributed as dist

    return dist


def broadcast(obj):
    """Rank 0's `obj` on every rank (picklable objects)."""
    if not world().distributed:
        return obj
    box = [obj]
    _dist().broadcast_object_list(box, src=0)
    return box[0]


def gather(obj) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    w = world()
    if not w.distributed:
        return [obj]
    out = [None] * w.size
    _dist().all_gather_object(out, obj)
    return out


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on any (stop decisions must be shared, or ranks wait forever)."""
    if not world().distributed:
        return flag
    import torch

    t = torch.tensor([1.0 if flag else 0.0], device=device())
    _dist().all_reduce(t, op=_dist().ReduceOp.MAX)
    return bool(t.item())


def all_sum(tensor):
    """Sum a tensor over ranks, in place and on its device (no host sync)."""
    if world().distributed:
        _dist().all_reduce(tensor)
    return tensor


def barrier() -> None:
    if world().distributed:
        _dist().barrier()


def rank_error_path(run_dir: Path, rank: int) -> Path:
    return Path(run_dir) / RANKS_DIR / f"rank-{rank}.error"


def record_rank_error(run_dir: Path, rank: int, message: str, details: str = "") -> None:
    """A failing rank's one line (then its traceback), for rank 0 and the launcher to report.

    Best effort: the disk may be the problem, or the run folder on another machine.
    """
    try:
        path = rank_error_path(run_dir, rank)
        path.parent.mkdir(exist_ok=True)
        path.write_text(message + "\n" + details, encoding="utf-8")
    except OSError:
        pass


def rank_errors(run_dir: Path) -> dict[int, str]:
    """{rank: its error line} of the ranks that recorded a failure."""
    folder = Path(run_dir) / RANKS_DIR
    errors = {}
    for path in sorted(folder.glob("rank-*.error")) if folder.is_dir() else []:
        try:
            text = path.read_text(encoding="utf-8").strip()
            errors[int(path.stem.split("-")[1])] = text.splitlines()[0] if text else "(no message)"
        except (OSError, ValueError):
            continue
    return errors


def peer_failure(run_dir: Path, size: int) -> str | None:
    """"rank R of N failed: …" when another rank recorded its error, else None."""
    errors = {r: e for r, e in rank_errors(run_dir).items() if r != world().rank}
    if not errors:
        return None
    rank = min(errors)
    return f"rank {rank} of {size} failed: {errors[rank]}"


def lost_peer(pids: list[int], exc: BaseException) -> str | None:
    """What to say when a collective failed because another rank is gone; None when `exc` is something else.

    A rank killed outright (SIGKILL, out of host memory) leaves no error file; on one machine its
    pid shows which one it was.
    """
    import time

    import psutil

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    me = world().rank
    time.sleep(0.5)  # the dead rank's process may need a moment to be reaped
    for rank, pid in enumerate(pids):
        if rank == me:
            continue
        try:
            gone = psutil.Process(pid).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
        except psutil.NoSuchProcess:
            gone = True
        except psutil.Error:
            gone = False
        if gone:
            return (f"rank {rank} of {len(pids)} (pid {pid}) died without a word (killed, or out of host memory?); "
                    f"the other ranks stopped")
    words = ("gloo", "nccl", "connection", "peer", "socket", "timed out", "distbackend")
    if any(w in f"{type(exc).__name__} {text}".lower() for w in words):
        return f"another rank stopped answering ({text})"
    return None


def shard(items: list, w: World | None = None) -> list:
    """This rank's contiguous share of `items` (rank 0 first), as even as can be."""
    w = w or world()
    if not w.distributed:
        return list(items)
    n = len(items)
    start = w.rank * n // w.size
    end = (w.rank + 1) * n // w.size
    return list(items[start:end])


__all__ = ["World", "world", "init", "device", "broadcast", "gather", "any_rank", "all_sum", "barrier", "shard",
           "record_rank_error", "rank_errors", "peer_failure", "lost_peer", "RANKS_DIR"]
