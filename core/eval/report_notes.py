"""What an eval run says about itself: the speed-ups it really used, and options that did nothing here."""

from __future__ import annotations

from core.eval.config import EvalConfig


def optimizations_used(config: EvalConfig, stats, model, device: str) -> list[str]:
    """What this run really used, read from the engine's stats and the loaded model, in words a report reader understands."""
    import torch

    active = []
    dtype = next(model.parameters()).dtype
    if dtype in (torch.bfloat16, torch.float16):
        active.append(f"{'bf16' if dtype == torch.bfloat16 else 'fp16'} weights and activations")
    if getattr(model.config, "_attn_implementation", None) == "sdpa":
        active.append("SDPA attention kernels")
    if config.mode == "logprob":
        active.append("log-prob scoring: one forward pass per batch, no generation")
    largest = max(stats.batch_sizes, default=0)
    if largest > 1:
        active.append(f"batched inference (up to {largest} rows per batch, left padding)")
    if stats.batches > 1 and largest > 1:  # one batch, or batches of one row, have nothing to sort for
        active.append("prompts sorted by token length to cut padding")
    if config.mode == "generate" and stats.generate_calls:
        if config.backend == "continuous":
            active.append("continuous batching (transformers ContinuousBatchingManager): finished rows free their slots")
            if config.cuda_graphs and device == "cuda":
                active.append("CUDA graphs (continuous batching)")
        else:
            if stats.rows_dropped:
                active.append(f"finished rows dropped from the batch and its KV cache ({stats.rows_dropped} rows)")
            if config.static_cache:
                active.append("static KV cache")
            if config.compile and device == "cuda":
                graphs = " with CUDA graphs (reduce-overhead)" if config.cuda_graphs else ""
                active.append("torch.compile of the decode step" + graphs)
            if config.stop_at_answer:
                active.append("stop each row once its answer letter is out (--stop-at-answer)")
    return active


def flag_warnings(config: EvalConfig, device: str) -> list[str]:
    notes = []
    generation_options = (config.stop_at_answer, config.static_cache, config.compile, config.cuda_graphs,
                          config.backend != "generate")
    if config.mode == "logprob" and any(generation_options):
        notes.append("generation options (--stop-at-answer, --static-cache, --compile, --cuda-graphs, --backend) "
                     "do nothing in logprob mode")
    if config.mode == "generate" and config.backend == "continuous" and any(generation_options[:3]):
        notes.append("--stop-at-answer, --static-cache and --compile apply to --backend generate only; ignored")
    if device != "cuda" and (config.compile or config.cuda_graphs):
        notes.append("--compile and --cuda-graphs only apply on a CUDA GPU; ignored on CPU")
    return notes
