"""Muon's parameter groups and schedule, and the chunked loss against the plain one (value and gradients)."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from core.optim import make_optimizer, make_scheduler, muon_groups
from core.train.losses import IGNORE, linear_cross_entropy, shifted


@pytest.fixture()
def gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=97, n_positions=64,
                                      bos_token_id=0, eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0,
                                      attn_pdrop=0.0))


def names(model, params) -> set[str]:
    ids = {id(p) for p in params}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest(gpt2):
    matrices, rest = muon_groups(gpt2)
    assert names(gpt2, matrices) == {f"transformer.h.{i}.{m}.weight" for i in range(2)
                                     for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")}
    # the embeddings (the output layer is tied to the token embedding), norms and biases go to AdamW
    assert {"transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight"} <= names(gpt2, rest)
    assert gpt2.lm_head.weight is gpt2.transformer.wte.weight
    assert all(p.dim() == 1 for n, p in gpt2.named_parameters() if "ln" in n or n.endswith("bias"))
    assert len(matrices) + len(rest) == len(list(gpt2.parameters()))

    optimizer, fused = make_optimizer(gpt2, "muon", 1e-3, 0.1)
    assert not fused  # no device-side skip of a non-finite step: the loop must check
    assert [g["adjust_lr_fn"] for g in optimizer.muon.param_groups] == ["match_rms_adamw"]
    decay = {g["weight_decay"]: names(gpt2, g["params"]) for g in optimizer.adamw.param_groups}
    assert decay[0.1] == {"transformer.wte.weight", "transformer.wpe.weight"} and decay[0.0]


def test_one_schedule_sets_both_halves_and_survives_a_reload(gpt2):
    optimizer, _ = make_optimizer(gpt2, "muon", 1e-3, 0.1)
    scheduler = make_scheduler(optimizer, total_steps=10, warmup=2, min_lr_ratio=0.1)
    x = torch.randint(0, 97, (2, 16))
    for _ in range(3):
        gpt2(input_ids=x, labels=x).loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    lrs = {g["lr"] for g in optimizer.muon.param_groups + optimizer.adamw.param_groups}
    assert len(lrs) == 1 and lrs.pop() < 1e-3
    before = {k: v.clone() for k, v in gpt2.state_dict().items()}
    state = optimizer.state_dict()
    assert set(state) == {"muon", "adamw"} and state["muon"]["state"]
    optimizer.load_state_dict(state)
    scheduler.step()  # after a reload the schedule still reaches the (rebuilt) groups of both optimizers
    lrs = {g["lr"] for g in optimizer.muon.param_groups + optimizer.adamw.param_groups}
    assert len(lrs) == 1
    gpt2(input_ids=x, labels=x).loss.backward()
    optimizer.step()
    moved = [k for k, v in gpt2.state_dict().items() if not torch.equal(v, before[k])]
    assert "transformer.h.0.mlp.c_fc.weight" in moved and "transformer.wte.weight" in moved


def test_an_unknown_optimizer_is_refused(gpt2):
    with pytest.raises(ValueError, match="adamw, muon"):
        make_optimizer(gpt2, "sgd", 1e-3, 0.1)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_the_chunked_loss_equals_the_plain_loss_and_its_gradients(chunk):
    torch.manual_seed(1)
    hidden = torch.randn(150, 24, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(311, 24, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 311, (150,))
    targets[::9] = IGNORE

    chunked = linear_cross_entropy(hidden, weight, targets, chunk=chunk)
    (chunked * 3).backward()  # a scaled upstream gradient, as a weighted micro-batch gives
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    plain = torch.nn.functional.cross_entropy(hidden @ weight.t(), targets, ignore_index=IGNORE)
    (plain * 3).backward()

    torch.testing.assert_close(chunked, plain)
    torch.testing.assert_close(grads[0], hidden.grad)
    torch.testing.assert_close(grads[1], weight.grad)


def test_the_chunked_loss_matches_gpt2s_own_loss_in_fp32(gpt2):
    """Through a real model: the last hidden states and the tied output layer give model(labels=...)'s loss and
    gradients without the model ever computing its logits."""
    x = torch.randint(0, 97, (3, 20))
    labels = x.clone()
    labels[0, :5] = IGNORE
    plain = gpt2(input_ids=x, labels=labels).loss
    plain.backward()
    expected = {n: p.grad.clone() for n, p in gpt2.named_parameters()}
    gpt2.zero_grad()

    hidden = gpt2.transformer(input_ids=x).last_hidden_state
    chunked = linear_cross_entropy(hidden.reshape(-1, 32), gpt2.lm_head.weight, shifted(labels).reshape(-1), chunk=16)
    chunked.backward()
    torch.testing.assert_close(chunked, plain, atol=1e-5, rtol=1e-5)
    for n, p in gpt2.named_parameters():
        torch.testing.assert_close(p.grad, expected[n], atol=1e-5, rtol=1e-4, msg=n)


def test_token_weights_weigh_each_position():
    torch.manual_seed(2)
    hidden, weight = torch.randn(10, 8), torch.randn(13, 8)
    targets = torch.randint(0, 13, (10,))
    w = torch.rand(10)
    per_token = torch.nn.functional.cross_entropy(hidden @ weight.t(), targets, reduction="none")
    torch.testing.assert_close(linear_cross_entropy(hidden, weight, targets, token_weights=w, chunk=3),
                               (per_token * w).sum())


def test_without_gradients_or_a_frozen_output_layer_the_value_is_the_same():
    torch.manual_seed(3)
    hidden, weight = torch.randn(40, 8, requires_grad=True), torch.randn(29, 8)
    targets = torch.randint(0, 29, (40,))
    plain = torch.nn.functional.cross_entropy(hidden @ weight.t(), targets)
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(hidden, weight, targets, chunk=6), plain.detach())
    frozen = linear_cross_entropy(hidden, weight, targets, chunk=6)  # LoRA: the output layer is frozen
    frozen.backward()
    expected = torch.autograd.grad(torch.nn.functional.cross_entropy(hidden @ weight.t(), targets), hidden)[0]
    torch.testing.assert_close(hidden.grad, expected)
    assert weight.grad is None


def test_muon_orthogonalizes_cpu_gradients_in_fp32_with_torch_s_own_iteration():
    """On a CPU the Newton-Schulz step runs in fp32 (torch's runs in bf16, ~45x slower there): the same iteration,
    so its result matches torch's own bf16 one to bf16 precision and is nearly orthogonal."""
    import torch.optim._muon as muon

    from core.optim import _fp32_newton_schulz_on_cpu

    installed = muon._zeropower_via_newtonschulz  # (an earlier Muon test may have patched it already)
    original = getattr(installed, "torch_own", installed)
    muon._zeropower_via_newtonschulz = original
    _fp32_newton_schulz_on_cpu()
    try:
        patched = muon._zeropower_via_newtonschulz
        assert patched is not original and patched.fp32_on_cpu and patched.torch_own is original
        coefficients = (muon.DEFAULT_A, muon.DEFAULT_B, muon.DEFAULT_C)
        for shape in ((32, 96), (96, 32)):  # wide and tall (GPT-2's Conv1D stores in x out)
            grad = torch.randn(shape, generator=torch.Generator().manual_seed(0))
            ours = patched(grad, coefficients, muon.DEFAULT_NS_STEPS, muon.EPS)
            theirs = original(grad, coefficients, muon.DEFAULT_NS_STEPS, muon.EPS)
            assert ours.dtype == torch.float32 and ours.shape == grad.shape
            torch.testing.assert_close(ours, theirs.float(), atol=0.05, rtol=0.05)
            small = ours if shape[0] < shape[1] else ours.T
            singular = torch.linalg.svdvals(small)
            assert singular.min() > 0.5 and singular.max() < 1.5  # what the quintic iteration promises
    finally:
        muon._zeropower_via_newtonschulz = installed
