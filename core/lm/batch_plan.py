"""How many questions go into one generation batch: every one of them, when memory allows."""

from __future__ import annotations

from typing import Sequence

import torch


def _free_memory(device: torch.device) -> int:
    """Bytes this device can still give: free GPU memory, or available RAM for the CPU."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    import psutil

    return psutil.virtual_memory().available


def auto_batch_size(model, lengths: Sequence[int], max_new_tokens: int, mode: str = "generate") -> int:
    """Every question in one batch when the memory estimate allows, on a GPU and on the CPU alike.

    One batch pays the decode loop once: on the 2-core CPU box one batch of 100 demo questions
    took 1.30 s where batches of 16 took 2.84 s (issue 10), and on a GPU a decode step costs about
    the same for 1 row as for 100. The estimate (KV cache, prefill activations, fp32 logits per row)
    leaves 30% of free memory for fragmentation; out-of-memory halving covers what it gets wrong.
    """
    count = len(lengths)
    device = next(model.parameters()).device
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    layers = getattr(config, "num_hidden_layers", 24)
    heads = getattr(config, "num_attention_heads", 16)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    width = next(model.parameters()).element_size()
    seq = max(lengths) + (max_new_tokens if mode == "generate" else 0)
    kv_per_row = 2 * layers * kv_heads * head_dim * width * seq
    # Prefill activations of one layer (MLP intermediate dominates) and a row of fp32 logits.
    intermediate = getattr(config, "intermediate_size", 4 * config.hidden_size)
    act_per_row = max(lengths) * (config.hidden_size * 4 + intermediate * 2) * width
    per_row = kv_per_row + act_per_row + config.vocab_size * 4 * 2
    return max(1, min(count, int(_free_memory(device) * 0.7 // per_row)))
