"""The GPT-2 that llmlab pretrains, and the mask-free causal attention it trains with.

Why a custom attention name: GPT-2's forward builds its causal mask through
`transformers.masking_utils`, whose packed-sequence check turns a device tensor into a Python
bool on every forward (`find_packed_sequence_indices`, a host sync), and under torch.compile it
materializes a (B, 1, T, T) mask instead, which keeps SDPA off its causal fast path. llmlab's
training blocks never hold padding in the middle (only the last block ends in padding, which a
causal model never attends to from a real token), so no mask is needed at all: an attention
name that transformers has no mask function for skips mask building entirely, and SDPA is
called with `is_causal=True`. Checked on transformers 5.17 and 5.24, eager and compiled:
identical loss, no mask, no packed-sequence check (tests/unit/test_pretrain_speed_paths.py).

Only for fixed blocks without padding inside: generation with a padded batch needs the real
mask, so the model is switched back to plain "sdpa" before anything else uses it.
"""

from __future__ import annotations

import torch

from core.pretrain.config import MODEL_PRESETS, PretrainConfig

CAUSAL_ATTENTION = "llmlab_causal_sdpa"
PLAIN_ATTENTION = "sdpa"


def _register_causal_attention() -> None:
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    # Registered under a name with no entry in transformers' mask-function table: mask creation
    # then returns None at once, and sdpa_attention_forward uses is_causal for q_len > 1.
    AttentionInterface.register(CAUSAL_ATTENTION, sdpa_attention_forward)


def build_model(cfg: PretrainConfig, vocab_size: int, eos_token_id: int | None = None):
    """GPT-2 with random weights: GPT2Config() unchanged for `default`, a small preset for `tiny`."""
    from transformers import GPT2Config, GPT2LMHeadModel

    preset = {**MODEL_PRESETS[cfg.model_size], **cfg.model_overrides}
    for name in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
        preset.setdefault(name, cfg.dropout)
    if vocab_size != GPT2Config().vocab_size:
        preset["vocab_size"] = vocab_size  # only when the tokenizer is not GPT-2's own
    if eos_token_id is not None and eos_token_id != GPT2Config().eos_token_id:
        preset.setdefault("bos_token_id", eos_token_id)
        preset.setdefault("eos_token_id", eos_token_id)
    torch.manual_seed(cfg.seed)
    model = GPT2LMHeadModel(GPT2Config(**preset))
    if eos_token_id is not None:
        # Generation pads with EOS (GPT-2's tokenizers have no pad token). Only in the generation
        # config: a pad id in the model config makes every training forward warn about unmasked padding.
        model.generation_config.pad_token_id = eos_token_id
    # GPT2LMHeadModel's class name is not in transformers' loss table; naming the loss avoids a
    # logger call inside forward that breaks torch.compile(fullgraph=True).
    model.loss_type = "ForCausalLM"
    return model


def use_causal_attention(model) -> bool:
    """Switch an SDPA model to the mask-free causal path for training; False when it uses another kernel."""
    if getattr(model.config, "_attn_implementation", None) != PLAIN_ATTENTION:
        return False  # eager (a bench lever) or flash: leave it as chosen
    _register_causal_attention()
    model.set_attn_implementation(CAUSAL_ATTENTION)
    return True


def restore_attention(model) -> None:
    """Back to plain SDPA with real masks, for generation, saving and anyone else using the model."""
    if getattr(model.config, "_attn_implementation", None) == CAUSAL_ATTENTION:
        model.set_attn_implementation(PLAIN_ATTENTION)
