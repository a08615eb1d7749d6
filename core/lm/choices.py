"""Multiple-choice scoring by log-probability: which answer letter a model finds most likely after the prompt.

`score_choices` is lm-evaluation-harness's way of asking (one forward pass, no generation), with the
conventions for what counts as the letter made explicit (docs/eval.md, "Scoring conventions").
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from core.lm.batches import BatchDone, EngineStats, model_device, prompt_lengths, run_batches
from core.mmmlu import LETTERS

Log = Callable[[str], None]


def choice_token_ids(tokenizer, log: Log | None = None, prefix: str = "") -> dict[str, int]:
    """The token that starts each answer letter (after `prefix`: "" for "A", " " for " A") right after the prompt."""
    ids = {}
    for letter in LETTERS:
        pieces = tokenizer.encode(prefix + letter, add_special_tokens=False)
        if len(pieces) != 1 and log:
            log(f"answer {prefix + letter!r} is {len(pieces)} tokens for this tokenizer; scoring its first token")
        ids[letter] = pieces[0]
    return ids


LETTER_CONVENTIONS = ("bare", "spaced", "both", "lm-eval")


def _lm_eval_pairs(tokenizer, prompt: str) -> tuple[list[int], dict[str, list[int]]]:
    """lm-evaluation-harness's `_encode_pair`: the context is the prompt less its trailing whitespace, which moves to
    the front of the continuation " A"; the continuation's tokens are the whole's past the context's."""
    context = prompt.rstrip()
    moved = prompt[len(context):]
    context_ids = tokenizer(context, add_special_tokens=True)["input_ids"]
    pairs = {}
    for letter in LETTERS:
        whole = tokenizer(context + (moved or " ") + letter, add_special_tokens=True)["input_ids"]
        pairs[letter] = whole[len(context_ids):]
    return context_ids, pairs


@torch.inference_mode()
def score_choices(
    model, tokenizer, prompts: Sequence[str], *, batch_size: int = 16, letters: str = "bare",
    on_row: Callable[[int, dict], None] | None = None,
    on_batch: Callable[[BatchDone], None] | None = None, should_stop: Callable[[], bool] | None = None,
    log: Log | None = None, stats: EngineStats | None = None,
) -> tuple[list[dict[str, float] | None], int]:
    """Log-probabilities of each answer letter A, B, C, D after the prompt; the prediction is the highest.

    `letters` says which tokens are an answer (docs/eval.md, "Scoring conventions"):
    - bare: the token "A" right after the prompt (whose trailing space is its own token for Qwen's BPE);
    - spaced: the token " A" (space and letter in one) right after it;
    - both: log(P("A") + P(" A")): a model may answer either way after the space;
    - lm-eval: lm-evaluation-harness's multiple_choice: the prompt less its trailing whitespace, then the
      continuation " A" (that whitespace moved to its front), scored as the sum of its tokens' log-probs.
    bare, spaced and both take one forward pass per batch; lm-eval too when every continuation is one token
    after the context, else one pass per letter. Returns (one {letter: logprob} per prompt or None if stopped,
    batch size).
    """
    if tokenizer.padding_side != "left":
        raise ValueError("score_choices needs a tokenizer with padding_side='left'")
    if letters not in LETTER_CONVENTIONS:
        raise ValueError(f"letters must be one of {LETTER_CONVENTIONS}")
    stats = stats if stats is not None else EngineStats()
    device = model_device(model)
    if letters == "lm-eval":
        encoded = [_lm_eval_pairs(tokenizer, p) for p in prompts]
        lengths = [len(ctx) for ctx, _ in encoded]
    else:
        lengths = prompt_lengths(tokenizer, prompts)
        bare = choice_token_ids(tokenizer, log) if letters in ("bare", "both") else None
        spaced = choice_token_ids(tokenizer, log, " ") if letters in ("spaced", "both") else None
        if bare and spaced and any(bare[k] == spaced[k] for k in LETTERS):
            spaced = None  # one token for both spellings: counting it twice would add nothing but log 2

    def last_logprobs(rows: list[list[int]]) -> torch.Tensor:
        """log-softmax of the next token after each row of ids (left-padded here)."""
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, width - len(row):], mask[r, width - len(row):] = torch.tensor(row), 1
        ids, mask = ids.to(device), mask.to(device)
        # A plain forward numbers positions from the first (pad) column; count real tokens
        # instead, as generate does, so a left-padded row scores as it would alone.
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=1).logits
        return torch.log_softmax(logits[:, -1, :].float(), dim=-1)

    def run_batch(chunk, report):
        if letters != "lm-eval":
            logprobs = last_logprobs([tokenizer(prompts[i], add_special_tokens=True)["input_ids"] for i in chunk])
            picked = {k: logprobs[:, bare[k]] if bare else None for k in LETTERS}
            if spaced:
                picked = {k: logprobs[:, spaced[k]] if picked[k] is None else torch.logaddexp(picked[k], logprobs[:, spaced[k]])
                          for k in LETTERS}
            rows = torch.stack([picked[k] for k in LETTERS], dim=1).tolist()
            for j, row in enumerate(rows):
                report(j, dict(zip(LETTERS, row)))
            return
        scores = [dict.fromkeys(LETTERS, 0.0) for _ in chunk]
        if all(len(encoded[i][1][k]) == 1 for i in chunk for k in LETTERS):
            logprobs = last_logprobs([encoded[i][0] for i in chunk]).tolist()
            for j, i in enumerate(chunk):
                scores[j] = {k: logprobs[j][encoded[i][1][k][0]] for k in LETTERS}
        else:  # a continuation of several tokens: add up each one's log-prob, token by token
            for j, i in enumerate(chunk):
                context, pairs = encoded[i]
                for k in LETTERS:
                    cont = pairs[k]
                    steps = last_logprobs([context + cont[:t] for t in range(len(cont))])
                    scores[j][k] = float(sum(steps[t, tok] for t, tok in enumerate(cont)))
        for j, row in enumerate(scores):
            report(j, row)

    return run_batches(
        len(prompts), lengths, batch_size, run_batch, lambda chunk, res: sum(lengths[i] for i in chunk),
        on_row, on_batch, should_stop, log, stats,
    )
