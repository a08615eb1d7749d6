"""Instruction models through their own chat template: a task's prompt becomes the user turn.

The one place llmlab renders a chat (fine-tuning's `--template chat`, `--chat` in eval, squad, math
and generate). Rendering is the tokenizer's own `apply_chat_template`; nothing here writes a
template. Two uses:

- `user_turn(tokenizer, text)`: the text a model sees when asked `text` as a user, up to and
  including the generation prompt (the assistant header). It is a string, so the engine tokenizes
  it like any prompt; a BOS the template writes is left to the tokenizer, which adds its own, so the
  ids equal `apply_chat_template(..., tokenize=True)`'s (tested).
- `chat_ids(tokenizer, prompt, target)`: the token ids of a user turn and the assistant turn that
  answers it, split where the assistant's tokens start, so fine-tuning puts its loss on the
  assistant's tokens only (its end-of-turn token included, what follows it not).
"""

from __future__ import annotations

from core.errors import UsageError


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def check_chat_template(tokenizer, where: str, option: str = "--chat") -> None:
    """One line when the tokenizer has no chat template to render with."""
    if not has_chat_template(tokenizer):
        raise UsageError(f"{option}: the tokenizer in {where} has no chat template (no chat_template in its "
                         f"tokenizer_config.json or chat_template.jinja); use an instruction model's folder, or drop {option}")


def _render(tokenizer, messages: list[dict], generation_prompt: bool) -> str:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    except Exception as exc:  # jinja errors: a template that refuses this conversation (e.g. asks for a system turn)
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"the tokenizer's chat template cannot render a user turn ({first})") from None


def _without_own_bos(tokenizer, text: str) -> str:
    """`text` less a leading BOS when tokenizing adds one anyway (so the BOS is not doubled)."""
    bos = tokenizer.bos_token
    if bos and text.startswith(bos):
        added = tokenizer("", add_special_tokens=True)["input_ids"]
        if added[:1] == [tokenizer.bos_token_id]:
            return text[len(bos):]
    return text


def user_turn(tokenizer, text: str) -> str:
    """What the model sees when a user asks `text`: the rendered chat up to the assistant's first token."""
    return _without_own_bos(tokenizer, _render(tokenizer, [{"role": "user", "content": text}], True))


def user_turns(tokenizer, texts: list[str]) -> list[str]:
    return [user_turn(tokenizer, t) for t in texts]


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def chat_ids(tokenizer, prompt: str, target: str) -> tuple[list[int], list[int]]:
    """(the user turn's ids with the generation prompt, the assistant turn's ids): their concatenation is the
    rendered two-turn chat. Trailing tokens after the assistant's end-of-turn that are only whitespace (Qwen's
    newline after <|im_end|>) are left out: the model never generates them."""
    asked = _ids(tokenizer, _render(tokenizer, [{"role": "user", "content": prompt}], True))
    whole = _ids(tokenizer, _render(tokenizer, [{"role": "user", "content": prompt},
                                                {"role": "assistant", "content": target}], False))
    if whole[:len(asked)] != asked:
        raise UsageError("the tokenizer's chat template renders the user turn differently once an answer follows, so "
                         "the assistant's tokens cannot be told apart; use --template mmmlu (or alpaca)")
    answer = whole[len(asked):]
    while answer and not tokenizer.decode(answer[-1:]).strip():
        answer = answer[:-1]
    if not answer:
        raise UsageError("the tokenizer's chat template renders an empty assistant turn; use --template mmmlu")
    return asked, answer
