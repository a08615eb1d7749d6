"""Generation samples during pretraining: the model continues fixed prompts, greedily and with top-p.

Seed 004's broken model was only found out by its samples (村民们都很高兴 went on with a long run of
“ and ” marks while the loss still looked fine), so every held-out check draws samples and flags
degenerate ones: few distinct token pairs, or one token repeated many times in a row.
"""

from __future__ import annotations

ZH_PROMPTS = ("村民们都很高兴", "今天早上，", "小明对妈妈说")
EN_PROMPTS = ("she looked at the door", "`` where are you going", "the next morning ,")
TOP_P = 0.9
# A sample is flagged when fewer than 30% of its token pairs are distinct, or one token runs 8 times in a row.
MIN_DISTINCT_2, MAX_REPEAT = 0.3, 8
NO_TOKEN = 2**30  # an id past any vocabulary: generation never stops on it


def language_of(rows: list[str]) -> str:
    """"zh" when at least 30% of the letters in the first rows are CJK ideographs, else "en"."""
    text = "".join(rows[:2000])
    letters = [ch for ch in text if ch.isalpha()]
    cjk = sum("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" for ch in letters)
    return "zh" if letters and cjk / len(letters) >= 0.3 else "en"


def default_prompts(language: str) -> tuple[str, ...]:
    return ZH_PROMPTS if language == "zh" else EN_PROMPTS


def distinct_2(ids: list[int]) -> float:
    """Distinct token bigrams over all bigrams (1.0 for fewer than two tokens)."""
    pairs = list(zip(ids, ids[1:]))
    return len(set(pairs)) / len(pairs) if pairs else 1.0


def longest_repeat(ids: list[int]) -> int:
    """The longest run of one token repeated back to back."""
    best = run = 0
    for i, token in enumerate(ids):
        run = run + 1 if i and token == ids[i - 1] else 1
        best = max(best, run)
    return best


def is_degenerate(d2: float, repeat: int, n: int) -> bool:
    return n >= MAX_REPEAT and (d2 < MIN_DISTINCT_2 or repeat >= MAX_REPEAT)


def why_degenerate(sample: dict) -> str:
    """What is wrong with a flagged sample, in words."""
    if sample["longest_repeat"] >= MAX_REPEAT:
        return f"one token {sample['longest_repeat']} times in a row"
    return f"only {sample['distinct_2']:.0%} of its token pairs distinct"


def draw_samples(model, tokenizer, prompts, max_new_tokens: int, step: int, seed: int = 0,
                 lockstep: bool = False) -> list[dict]:
    """One greedy and one top-p continuation per prompt, each with its degeneration figures.

    One prompt at a time (no padding, so no attention mask is needed) and under a forked RNG with a
    fixed seed, so sampling draws nothing from the training run's random stream. `lockstep` (a model
    sharded with --fsdp, generating on every rank together): every rank generates all max_new_tokens,
    so none stops at an end-of-text token while another still needs its shards (an end id no token has
    stands in for it); the text is then cut after the first end-of-text, as without lockstep.
    """
    import torch

    from core.pretrain.model import restore_attention, use_causal_attention

    was_training = model.training
    causal = getattr(model.config, "_attn_implementation", "") != "sdpa"
    restore_attention(model)  # generation with a KV cache wants the plain SDPA path
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for prompt in prompts:
                ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)
                for mode, options in (("greedy", {"do_sample": False}),
                                      ("top_p", {"do_sample": True, "top_p": TOP_P, "temperature": 1.0, "top_k": 0})):
                    new = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                         pad_token_id=tokenizer.eos_token_id,
                                         eos_token_id=[NO_TOKEN] if lockstep else tokenizer.eos_token_id,
                                         **options)[0, ids.shape[1]:].tolist()
                    if lockstep and tokenizer.eos_token_id in new:
                        new = new[:new.index(tokenizer.eos_token_id) + 1]
                    d2, repeat = distinct_2(new), longest_repeat(new)
                    out.append({"step": step, "prompt": prompt, "text": tokenizer.decode(new, skip_special_tokens=True),
                                "mode": mode, "new_tokens": len(new), "distinct_2": round(d2, 3),
                                "longest_repeat": repeat, "degenerate": is_degenerate(d2, repeat, len(new))})
    finally:
        model.train(was_training)
        if causal:
            use_causal_attention(model)
    return out
