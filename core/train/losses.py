"""Cross-entropy through the output layer, chunk by chunk, without ever building the full-vocabulary logits.

Why by hand: GPT-2's output layer is 50,257 wide. A step of 8 × 128 tokens writes 1024 × 50,257 fp32
logits (206 MB), reads them back for the softmax, writes their gradient (206 MB again), and in the
tiny preset that layer holds 3.2 M of the model's 3.3 M parameters, so it is most of the step's
memory traffic. transformers has no fused loss for GPT-2 (Liger-Kernel does not support it and
needs Triton; see the speed notes). `linear_cross_entropy` takes the last hidden states and the
output weight, and for each chunk of positions computes the logits, the loss and, at once, the
gradients with respect to the hidden states and the weight (softmax minus one-hot, scaled): the
backward pass then only hands those back. The work is the same matrix products a plain loss and
its backward do; only one chunk's logits exist at a time. Exact: the tests compare value and
gradients with `F.cross_entropy` on full logits.
"""

from __future__ import annotations

import torch

IGNORE = -100


class _LinearCrossEntropy(torch.autograd.Function):
    """sum over positions of weight_i · CE(hidden_i @ W.T, target_i), its gradients computed chunk by chunk in forward."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, token_weights: torch.Tensor,
                chunk: int, weight_grad: bool) -> torch.Tensor:
        acc = torch.promote_types(hidden.dtype, torch.float32)  # softmax and sums in fp32 at least (bf16 would drift)
        grad_hidden = torch.empty_like(hidden)
        # a frozen output layer (LoRA) needs no gradient: skip that product entirely
        grad_weight = torch.zeros(weight.shape, dtype=acc, device=weight.device) if weight_grad else None
        total = torch.zeros((), dtype=acc, device=hidden.device)
        head = weight.to(hidden.dtype)  # once: a cast of the whole output layer when the hidden states are bf16
        for start in range(0, hidden.shape[0], chunk):
            h = hidden[start:start + chunk]
            w = token_weights[start:start + chunk].to(acc)
            t = targets[start:start + chunk].clamp(min=0)  # ignored positions have weight 0: any index will do
            cols = torch.arange(h.shape[0], device=h.device)
            # One chunk of logits laid out (V, chunk), the vocabulary down the rows: W @ hᵀ ran twice as fast as
            # h @ Wᵀ on this project's CPU (its output rows are the long axis), the column reductions below run
            # along the contiguous axis, and the whole loss was 1.4x faster (bench/chunked_loss.py).
            logits = (head @ h.t()).to(acc)
            target_logit = logits[t, cols]
            top = logits.amax(0)
            probs = logits.sub_(top).exp_()  # unnormalized, in the logits' own memory
            norm = probs.sum(0)
            total += ((top + norm.log() - target_logit) * w).sum()
            # d loss / d logits = weight_i · (softmax - one-hot), still in the same memory
            grad = probs.mul_(w / norm)
            grad[t, cols] -= w
            grad = grad.to(h.dtype)
            torch.mm(grad.t(), head, out=grad_hidden[start:start + chunk])
            if weight_grad:  # accumulated in place: no (V, C) temporary per chunk
                grad_weight.addmm_(grad.to(acc), h.to(acc))
        ctx.save_for_backward(grad_hidden, grad_weight.to(weight.dtype) if weight_grad else None)
        return total

    @staticmethod
    def backward(ctx, grad_output):
        grad_hidden, grad_weight = ctx.saved_tensors
        return (grad_hidden * grad_output, None if grad_weight is None else grad_weight * grad_output,
                None, None, None, None)


def _loss_only(hidden, weight, targets, token_weights, chunk: int) -> torch.Tensor:
    """The same sum without gradients (held-out checks): one chunk of logits at a time, nothing kept."""
    acc = torch.promote_types(hidden.dtype, torch.float32)
    total = torch.zeros((), dtype=acc, device=hidden.device)
    head = weight.to(hidden.dtype)
    for start in range(0, hidden.shape[0], chunk):
        h, t = hidden[start:start + chunk], targets[start:start + chunk].clamp(min=0)
        logits = (head @ h.t()).to(acc)  # (V, chunk), as in the training path
        per_token = torch.logsumexp(logits, dim=0) - logits[t, torch.arange(h.shape[0], device=h.device)]
        total += (per_token * token_weights[start:start + chunk].to(acc)).sum()
    return total


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         token_weights: torch.Tensor | None = None, chunk: int = 128) -> torch.Tensor:
    """Σ token_weight · cross-entropy of `hidden @ weight.T` against `targets`, never holding more than `chunk` rows of logits.

    hidden: (N, C); weight: (V, C), the output layer's; targets: (N,) with IGNORE where there is no target.
    Without `token_weights` it is the mean over the positions that have a target (what `model(labels=...)` gives).
    """
    valid = targets != IGNORE
    if token_weights is None:
        token_weights = valid.float() / valid.sum().clamp(min=1)
    else:
        token_weights = torch.where(valid, token_weights, 0.0)
    if not torch.is_grad_enabled() or not (hidden.requires_grad or weight.requires_grad):
        return _loss_only(hidden, weight, targets, token_weights, chunk)
    return _LinearCrossEntropy.apply(hidden, weight, targets, token_weights, chunk, weight.requires_grad)


def output_layer(model) -> torch.Tensor | None:
    """The output layer's weight when `linear_cross_entropy` can stand in for it (a plain bias-free Linear, as in
    GPT-2 and Qwen2), else None."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if type(head) is not torch.nn.Linear or head.bias is not None or getattr(model.config, "final_logit_softcapping", None):
        return None
    return head.weight


def causal_lm_loss(body, weight: torch.Tensor, input_ids: torch.Tensor, labels: torch.Tensor,
                   chunk: int = 128) -> torch.Tensor:
    """What `model(input_ids, labels=labels).loss` is (the mean next-token loss), without the full logits: `body` is
    the model without its output layer (`model.base_model`, or its torch.compile wrapper), `weight` that layer's."""
    hidden = body(input_ids=input_ids, use_cache=False).last_hidden_state
    return linear_cross_entropy(hidden.flatten(0, 1), weight, shifted(labels).flatten(), chunk=chunk)


def shifted(labels: torch.Tensor) -> torch.Tensor:
    """Next-token targets for each position of (B, T) labels: labels moved left by one, the last position ignored."""
    return torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE)


__all__ = ["linear_cross_entropy", "causal_lm_loss", "output_layer", "shifted", "IGNORE"]
