"""The GPU check's QLoRA step: LoRA over an NF4 base shaped like Qwen2.5-0.5B (random weights), tokens/s and peak
memory against `llmlab finetune --plan`'s estimate for the same settings.

    python bench/qlora_check.py --out DIR            # on the GPU box (bench/gpu_check.sh runs it)
    python bench/qlora_check.py --smoke --out DIR    # a tiny shape, to try the script on a CPU

Writes DIR/qlora-nf4.json: device, versions, the settings, tokens/s over the timed steps, the peak memory
(torch.cuda.max_memory_allocated from before the load; on a CPU the peak RSS growth) and the plan's total.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Qwen2.5-0.5B's config.json, less the weights: what the seed tasks tune.
QWEN25_05B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                  num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=True, rope_theta=1000000.0)
SMOKE = dict(vocab_size=4096, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True)


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from core.finetune.config import FinetuneConfig
    from core.finetune.lora import add_lora, prepare_base
    from core.finetune.plan import memory_plan
    from core.finetune.train import Example, collate, target_loss
    from core.lm.loading import load_model, pick_device

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    folder = out / "qwen2.5-0.5b-shaped"
    shape = SMOKE if args.smoke else QWEN25_05B
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(Qwen2Config(**shape), dtype=torch.bfloat16).save_pretrained(folder)
    device = pick_device()
    cfg = FinetuneConfig(model=str(folder), data="-", quantize="nf4", batch_size=args.batch, max_length=args.length,
                         gradient_checkpointing=True)
    plan = memory_plan(cfg)

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        import resource

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model, _ = load_model(folder, dtype, device, tokenizer=object(), quantize="nf4")
    model = prepare_base(model, True, True)
    model, counts = add_lora(model, cfg.rank, cfg.alpha, 0.0, "auto", 0)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    target = 32  # the plan's assumption: the answer's tokens carry the loss
    examples = [Example(torch.randint(10, shape["vocab_size"] - 10, (args.length,)).tolist(),
                        [-100] * (args.length - target) + torch.randint(10, 1000, (target,)).tolist())
                for _ in range(args.batch)]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    times = []
    for step in range(args.steps):
        start = time.perf_counter()
        with autocast:
            loss = target_loss(model, collate(examples, 0, device))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    timed = times[2:] or times  # the first steps warm the kernels
    if device == "cuda":
        peak, peak_how = torch.cuda.max_memory_allocated() - before, "torch.cuda.max_memory_allocated"
    else:
        import resource

        peak, peak_how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before, "peak RSS growth"
    import bitsandbytes
    import peft
    import transformers

    result = {
        "bench": "qlora-nf4", "date": date.today().isoformat(), "device": device,
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                     "bitsandbytes": bitsandbytes.__version__},
        "shape": "smoke" if args.smoke else "Qwen2.5-0.5B (random weights)", "batch": args.batch, "length": args.length,
        "gradient_checkpointing": True, "trainable_params": counts["trainable_params"], "steps_timed": len(timed),
        "tokens_per_s": round(args.batch * args.length * len(timed) / sum(timed), 1),
        "peak_bytes": int(peak), "peak_measured_by": peak_how, "plan_total_bytes": plan.total, "plan_parts": plan.parts,
        "plan_over_measured": round(plan.total / peak, 3) if peak > 0 else None, "final_loss": round(float(loss), 4),
    }
    (out / "qlora-nf4.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("device", "tokens_per_s", "peak_bytes", "plan_total_bytes",
                                            "plan_over_measured")}))


if __name__ == "__main__":
    main()
