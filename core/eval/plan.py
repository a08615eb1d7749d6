"""`llmlab eval --plan`: the memory an eval will take, from config.json alone (core/lm/plan.py)."""

from __future__ import annotations

from core.eval.config import EvalConfig


def memory_plan(cfg: EvalConfig):
    """Weights (as quantized) and, per batch of questions, the KV cache and one layer's prefill activations."""
    from core.lm import plan as p

    config, source = p.config_of(cfg.model, cfg.demo)
    shape = p.shape_of(config, source)
    memory = p.free_memory()
    gpu = memory["device"] == "cuda"
    width = 2 if gpu and cfg.dtype in ("auto", "bf16", "fp16") else 4
    quantize = "gptq" if shape.saved_quantization else cfg.quantize
    prompt = p.EVAL_PROMPT_TOKENS
    length = prompt + (cfg.max_new_tokens if cfg.mode == "generate" else 0)
    questions = cfg.limit or 100

    def parts(batch: int, quantize_as: str) -> dict:
        kv = p.kv_cache_bytes(shape, batch, length, width) if cfg.mode == "generate" else 0
        prefill = batch * prompt * (4 * shape.hidden + 2 * shape.intermediate) * width + batch * shape.vocab * 4 * 2
        return {"weights": p.weight_bytes(shape, "none" if quantize_as == "gptq" else quantize_as, width),
                "KV cache": kv, "prefill activations": prefill}

    per_question = sum(parts(1, quantize).values()) - parts(1, quantize)["weights"]
    room = memory["free"] * (1 - p.HEADROOM) - parts(1, quantize)["weights"]
    if cfg.batch_size == "auto":
        batch = max(1, min(questions, int(room // max(per_question, 1)))) if room > 0 else 1
    else:
        batch = min(cfg.batch_size, questions)
    plan = p.Plan(kind="eval", model=source, model_type=shape.model_type, device=memory["device"], params=shape.params,
                  trainable_params=0, quantize=quantize,
                  weights_by_quantization={q: p.weight_bytes(shape, q, width) for q in ("none", "nf4", "int8")},
                  parts=parts(batch, quantize),
                  notes=[f"a batch of {batch} questions ({cfg.batch_size} asked), {prompt} prompt tokens each assumed"
                         + (f" + {cfg.max_new_tokens} new tokens in the KV cache" if cfg.mode == "generate" else ""),
                         f"KV cache per question: {p.gib(p.kv_cache_bytes(shape, 1, length, width))}"])
    alternatives = []
    if quantize == "none":
        alternatives.append(("--quantize nf4", sum(parts(batch, "nf4").values())))
    smaller = batch // 2
    while smaller >= 1:
        alternatives.append((f"--batch-size {smaller}", sum(parts(smaller, quantize).values())))
        smaller //= 2
    return p.settle(plan, memory, alternatives)
