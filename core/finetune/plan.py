"""`llmlab finetune --plan`: the memory a LoRA fine-tune will take, from config.json alone (core/lm/plan.py)."""

from __future__ import annotations

from core.finetune.config import FinetuneConfig


def memory_plan(cfg: FinetuneConfig):
    """The plan for this fine-tune: base weights (as quantized), the adapter, its gradients and AdamW state, and one
    micro-batch's activations at --max-length, with what would make it fit."""
    from core.finetune.lora import resolve_target_names
    from core.lm import plan as p

    config, source = p.config_of(cfg.model, cfg.demo)
    shape = p.shape_of(config, source)
    memory = p.free_memory()
    gpu = memory["device"] == "cuda"
    width = 2 if gpu and cfg.bf16 else 4                         # frozen base weights and activations
    quantize = "gptq" if shape.saved_quantization else cfg.quantize
    other = 4 if quantize != "none" else width                   # kbit preparation keeps the rest in fp32
    names = sorted({name.rsplit(".", 1)[-1] for name, _, _ in shape.linears})
    trainable = p.lora_params(shape, resolve_target_names(shape.model_type, names, cfg.targets), cfg.rank)
    micro = min(cfg.micro_batch_size or cfg.batch_size, cfg.batch_size)
    act_width = 2 if gpu and cfg.bf16 else 4

    def parts(quantize_as: str, micro_batch: int, checkpointing: bool) -> dict:
        return {
            "weights": p.weight_bytes(shape, "none" if quantize_as == "gptq" else quantize_as, other if quantize_as != "none"
                                      else width),
            "adapter (fp32)": trainable * 4,
            "gradients": trainable * 4,
            "optimizer (AdamW)": trainable * 8,
            "activations": p.activation_bytes(shape, micro_batch, cfg.max_length, act_width, checkpointing,
                                              min(p.TARGET_TOKENS, cfg.max_length)),
        }

    chosen = parts(quantize, micro, cfg.checkpointing)
    plan = p.Plan(kind="finetune", model=source, model_type=shape.model_type, device=memory["device"], params=shape.params,
                  trainable_params=trainable, quantize=quantize,
                  weights_by_quantization={q: p.weight_bytes(shape, q, width if q == "none" else other)
                                           for q in ("none", "nf4", "int8")},
                  parts=chosen, notes=[f"activations at {micro} × {cfg.max_length} tokens per micro-batch, gradient "
                                       f"checkpointing {'on' if cfg.checkpointing else 'off'} (on: "
                                       f"{p.gib(parts(quantize, micro, True)['activations'])}, off: "
                                       f"{p.gib(parts(quantize, micro, False)['activations'])})",
                                       f"logits of up to {p.TARGET_TOKENS} target tokens per example"])
    alternatives = []
    if quantize == "none":
        alternatives.append(("--quantize nf4", sum(parts("nf4", micro, True).values())))
    if not cfg.checkpointing:
        alternatives.append(("--gradient-checkpointing", sum(parts(quantize, micro, True).values())))
    smaller = micro // 2
    while smaller >= 1:
        alternatives.append((f"--micro-batch-size {smaller}", sum(parts(quantize, smaller, cfg.checkpointing).values())))
        smaller //= 2
    if len(memory["gpus"]) > 1 and micro > 1:
        n = len(memory["gpus"])
        alternatives.append((f"--processes {n} (each rank takes 1/{n} of a batch)",
                             sum(parts(quantize, max(1, -(-micro // n)), cfg.checkpointing).values())))
    return p.settle(plan, memory, alternatives)
