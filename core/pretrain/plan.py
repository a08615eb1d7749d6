"""`llmlab pretrain --plan`: the memory a pretraining run will take, from the model preset alone (core/lm/plan.py)."""

from __future__ import annotations

from core.pretrain.config import MODEL_PRESETS, PretrainConfig


def memory_plan(cfg: PretrainConfig):
    """fp32 weights, gradients and AdamW state for every parameter, and one micro-batch's activations and logits."""
    from transformers import GPT2Config

    from core.lm import plan as p

    vocab = cfg.tokenizer_vocab if cfg.tokenizer == "train" else GPT2Config().vocab_size
    config = GPT2Config(**{**MODEL_PRESETS[cfg.model_size], **cfg.model_overrides, "vocab_size": vocab}).to_dict()
    shape = p.shape_of(config, f"GPT-2 {cfg.model_size}")
    memory = p.free_memory()
    gpu = memory["device"] == "cuda"
    act_width = 2 if gpu and cfg.bf16 else 4
    micro = min(cfg.micro_batch_size or cfg.batch_size, cfg.batch_size)

    def parts(micro_batch: int) -> dict:
        return {"weights (fp32)": shape.params * 4, "gradients": shape.params * 4, "optimizer (AdamW)": shape.params * 8,
                "activations": p.activation_bytes(shape, micro_batch, cfg.block_size, act_width, False, cfg.block_size,
                                                  loss="hf_loss")}

    plan = p.Plan(kind="pretrain", model=f"GPT-2 {cfg.model_size} (vocabulary {vocab:,})", model_type="gpt2",
                  device=memory["device"], params=shape.params, trainable_params=shape.params, quantize="none",
                  weights_by_quantization={"none": shape.params * 4}, parts=parts(micro),
                  notes=[f"activations at {micro} × {cfg.block_size} tokens per micro-batch, logits for every token"])
    alternatives = []
    smaller = micro // 2
    while smaller >= 1:
        alternatives.append((f"--micro-batch-size {smaller}", sum(parts(smaller).values())))
        smaller //= 2
    if len(memory["gpus"]) > 1 and micro > 1:
        n = len(memory["gpus"])
        alternatives.append((f"--processes {n}", sum(parts(max(1, -(-micro // n))).values())))
    return p.settle(plan, memory, alternatives)
