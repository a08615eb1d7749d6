"""The loss alone: cross-entropy through GPT-2's 50,257-wide output layer, full logits against chunks.

    python bench/chunked_loss.py                     # 1,024 positions, widths 64 and 256, chunks 128/256/512
    python bench/chunked_loss.py --positions 8192 --widths 768 --device cuda

Forward and backward of `F.cross_entropy(h @ W.T, t)` against `core.train.losses.linear_cross_entropy`
with several chunk sizes; the median of --reps timed repetitions after one warm-up. It picks the
chunk size; whether the chunked loss pays in a whole run is bench/pretrain.py's `chunked-loss-*` levers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `core` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def timed(fn, reps: int, sync) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> list[dict]:
    import torch

    from bench.common import cuda_sync
    from core.train.losses import linear_cross_entropy

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--positions", type=int, default=1024, help="positions per step (8 x 128 by default)")
    ap.add_argument("--widths", default="64,256", help="hidden sizes (the tiny and mid presets by default)")
    ap.add_argument("--chunks", default="128,256,512")
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for width in (int(w) for w in args.widths.split(",")):
        gen = torch.Generator().manual_seed(0)
        weight = torch.randn(args.vocab, width, generator=gen).to(device).requires_grad_()
        hidden = torch.randn(args.positions, width, generator=gen).to(device).requires_grad_()
        targets = torch.randint(0, args.vocab, (args.positions,), generator=gen).to(device)

        def full():
            torch.nn.functional.cross_entropy(hidden @ weight.t(), targets).backward()

        runs = [("full logits", full)] + [
            (f"chunks of {c}", lambda c=c: linear_cross_entropy(hidden, weight, targets, chunk=c).backward())
            for c in (int(x) for x in args.chunks.split(","))]
        for name, fn in runs:
            ms = timed(fn, args.reps, cuda_sync) * 1000
            rows.append({"width": width, "loss": name, "ms": round(ms, 1)})
            print(f"width {width:>5}  {name:<16} {ms:8.1f} ms  (forward + backward, {args.positions} positions)",
                  flush=True)
    return rows


if __name__ == "__main__":
    main()
