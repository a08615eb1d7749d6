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

    All prompts in one batch per decoding mode (left-padded, with their attention mask): two `generate`
    calls per check instead of two per prompt, a third of the forward passes with the default three
    prompts. Under a forked RNG with a fixed seed, so sampling draws nothing from the training run's
    random stream. Each row's text ends at its first end-of-text (generate pads a finished row with
    it). `lockstep` (a model sharded with --fsdp, generating on every rank together): every rank
    generates all max_new_tokens, so none stops while another still needs its shards (an end id no
    token has stands in for it).
    """
    import torch

    from core.memory import OOM_ERRORS
    from core.pretrain.model import restore_attention, use_causal_attention

    if not prompts:
        return []
    was_training = model.training
    causal = getattr(model.config, "_attn_implementation", "") != "sdpa"
    restore_attention(model)  # generation with a KV cache and a padding mask wants the plain SDPA path
    model.eval()
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    rows = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), eos, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):], mask[i, width - len(r):] = torch.tensor(r, dtype=torch.long), 1
    ids, mask = ids.to(device), mask.to(device)
    by_mode = {}
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            def generate(x, m, options) -> list[list[int]]:
                return model.generate(input_ids=x, attention_mask=m, max_new_tokens=max_new_tokens, pad_token_id=eos,
                                      eos_token_id=[NO_TOKEN] if lockstep else eos, **options)[:, x.shape[1]:].tolist()

            for mode, options in (("greedy", {"do_sample": False}),
                                  ("top_p", {"do_sample": True, "top_p": TOP_P, "temperature": 1.0, "top_k": 0})):
                try:
                    by_mode[mode] = generate(ids, mask, options)
                except OOM_ERRORS:  # samples never cost the run: one prompt at a time, no padding, instead
                    if lockstep:  # the ranks must generate alike; one cannot fall back alone
                        raise
                    by_mode[mode] = [generate(ids[i:i + 1, width - len(r):], mask[i:i + 1, width - len(r):], options)[0]
                                     for i, r in enumerate(rows)]
    finally:
        model.train(was_training)
        if causal:
            use_causal_attention(model)
    out = []
    for i, prompt in enumerate(prompts):
        for mode, generated in by_mode.items():
            new = generated[i]
            if eos in new:
                new = new[:new.index(eos) + 1]
            d2, repeat = distinct_2(new), longest_repeat(new)
            out.append({"step": step, "prompt": prompt, "text": tokenizer.decode(new, skip_special_tokens=True),
                        "mode": mode, "new_tokens": len(new), "distinct_2": round(d2, 3),
                        "longest_repeat": repeat, "degenerate": is_degenerate(d2, repeat, len(new))})
    return out
