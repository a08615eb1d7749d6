"""Where one pretraining step's time goes: the model body, the loss through the output layer, the backward
pass, gradient clipping and the optimizer, each timed apart on random token blocks.

    python bench/step_parts.py                              # tiny preset, Muon, chunked loss, 8 x 128 tokens
    python bench/step_parts.py --model-size mid --optimizer adamw --loss full

The parts are llmlab's own pieces (core.pretrain.model, core.train.losses, core.optim), called in the order
the training loop calls them, without autocast or compile: a CPU view of the step. The mean of --steps
steps after --warmup untimed ones; CUDA work is synchronized before each clock read (bench.common.cuda_sync).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `core` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PARTS = ("body", "loss", "backward", "clip", "optimizer")


def main(argv: list[str] | None = None) -> dict:
    import torch

    from bench.common import cuda_sync
    from core.optim import make_optimizer
    from core.pretrain.config import MODEL_PRESETS, PretrainConfig
    from core.pretrain.model import build_model, use_causal_attention
    from core.train.losses import linear_cross_entropy, shifted

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-size", default="tiny", choices=sorted(MODEL_PRESETS))
    ap.add_argument("--optimizer", default="muon", choices=("adamw", "muon"))
    ap.add_argument("--loss", default="chunked", choices=("chunked", "full"))
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    device = torch.device(args.device)

    model = build_model(PretrainConfig(model_size=args.model_size, data="-"), vocab_size=50257).to(device)
    use_causal_attention(model)
    model.train()
    optimizer, _ = make_optimizer(model, args.optimizer, 1e-3, 0.1, fused=device.type == "cuda")
    weight = model.get_output_embeddings().weight
    x = torch.randint(0, 50257, (args.batch_size, args.block_size), generator=torch.Generator().manual_seed(0)).to(device)
    totals = dict.fromkeys(PARTS, 0.0)
    for step in range(args.warmup + args.steps):
        marks = [time.perf_counter()]

        def mark() -> None:
            cuda_sync()
            marks.append(time.perf_counter())

        hidden = model.base_model(input_ids=x, use_cache=False).last_hidden_state
        mark()
        if args.loss == "chunked":
            loss = linear_cross_entropy(hidden.flatten(0, 1), weight, shifted(x).flatten())
        else:
            logits = model.lm_head(hidden)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), shifted(x).flatten())
        mark()
        loss.backward()
        mark()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        mark()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        mark()
        if step >= args.warmup:
            for part, start, end in zip(PARTS, marks, marks[1:]):
                totals[part] += (end - start) / args.steps
    ms = {part: round(1000 * seconds, 1) for part, seconds in totals.items()}
    ms["step"] = round(sum(ms.values()), 1)
    print(f"{args.model_size}, {args.optimizer}, {args.loss} loss, {args.batch_size} x {args.block_size} tokens on "
          f"{device.type}, ms per step: " + ", ".join(f"{k} {v}" for k, v in ms.items()))
    return ms


if __name__ == "__main__":
    main()
