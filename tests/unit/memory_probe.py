"""Run one training step and print how far the process's peak RSS rose above its size before the model existed.

Used by test_memory_plan.py in a fresh process (so no earlier test's memory hides the peak):
    python tests/unit/memory_probe.py finetune MODEL_DIR BATCH LENGTH TARGET RANK QUANTIZE
    python tests/unit/memory_probe.py pretrain MODEL_SIZE BATCH BLOCK
Prints one JSON line: {"peak_growth": bytes}.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def peak() -> int:
    """This process's own peak RSS (VmHWM, reset by exec). Not ru_maxrss: Linux carries that over from a forking
    parent, so a probe started by a large test worker would report the worker's size."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    kind = argv[0]
    torch.ones(64, 64) @ torch.ones(64, 64)  # thread pools and kernels exist before the baseline
    if kind == "finetune":
        from core.finetune.lora import add_lora, prepare_base
        from core.finetune.train import Example, collate, target_loss
        from core.lm.loading import load_model

        folder, batch, length, target, rank, quantize = argv[1], *map(int, argv[2:6]), argv[6]

        def step(model, batch, length, target):
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
            examples = [Example(list(range(100, 100 + length)), [-100] * (length - target) + list(range(200, 200 + target)))
                        for _ in range(batch)]
            for _ in range(2):
                target_loss(model, collate(examples, 0, "cpu")).backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

        # The same code once at a tiny size first, so the modules it imports and the kernels it sets up are not
        # counted as the step's memory.
        warm = Path(folder).parent / "warm"
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(folder)
        config.update({"hidden_size": 32, "intermediate_size": 32, "num_hidden_layers": 1, "vocab_size": 300})
        if getattr(config, "layer_types", None):
            config.layer_types = config.layer_types[:1]
        AutoModelForCausalLM.from_config(config).save_pretrained(warm)
        tiny, _ = load_model(warm, torch.float32, "cpu", tokenizer=object(), quantize=quantize)
        step(add_lora(prepare_base(tiny, quantize != "none", False), 2, 4, 0.0, "auto", 0)[0].train(), 2, 8, 2)
        del tiny
        base = rss()
        model, _ = load_model(Path(folder), torch.float32, "cpu", tokenizer=object(), quantize=quantize)
        with torch.no_grad():  # weights may still be pages of the mapped file; on a GPU all of them are resident
            for param in model.parameters():
                if param.dtype.is_floating_point:
                    param.data = param.data.clone()
        model = prepare_base(model, quantize != "none", False)
        model, _ = add_lora(model, rank, 2 * rank, 0.0, "auto", 0)
        step(model.train(), batch, length, target)
    else:
        from core.pretrain.config import PretrainConfig
        from core.pretrain.model import build_model

        size, batch, block = argv[1], int(argv[2]), int(argv[3])

        def step(model, batch, block, vocab):
            model.train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            ids = torch.randint(0, vocab, (batch, block), generator=torch.Generator().manual_seed(0))
            for _ in range(2):
                model(input_ids=ids, labels=ids).loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

        step(build_model(PretrainConfig(model_size="tiny", dropout=0.0), 300), 2, 8, 300)  # imports and kernels first
        base = rss()
        step(build_model(PretrainConfig(model_size=size, dropout=0.0), 50257), batch, block, 50257)
    print(json.dumps({"peak_growth": peak() - base}))


if __name__ == "__main__":
    main(sys.argv[1:])
