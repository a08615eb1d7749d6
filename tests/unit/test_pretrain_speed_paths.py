"""The pretraining speed paths do what the summary says: no mask, one compile, the schedule, honest optimizations."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from core.optim import make_scheduler, warmup_steps
from core.pretrain.config import PretrainConfig
from core.pretrain.data import pack_blocks
from core.pretrain.model import CAUSAL_ATTENTION, build_model, use_causal_attention
from core.pretrain.run import run_pretrain
from core.pretrain.train import prepare, train
from core.runs import iter_jsonl, read_json
from core.synthetic import bookcorpus_like_rows


def quiet(_msg: str) -> None:
    pass


def blocks(n_tokens: int, block: int = 32, seed: int = 0):
    ids = torch.randint(0, 50257, (n_tokens,), generator=torch.Generator().manual_seed(seed)).numpy()
    return pack_blocks(ids, block, pad_id=50256)


def tiny_cfg(**kw) -> PretrainConfig:
    return PretrainConfig(**{**dict(model_size="tiny", block_size=32, batch_size=4, epochs=1, log_every=2,
                                    save_minutes=0, lr=3e-3), **kw})


class SdpaSpy:
    """Records the mask and causal flag of every scaled_dot_product_attention call."""

    def __init__(self, monkeypatch):
        self.calls: list[tuple[bool, bool]] = []
        real = torch.nn.functional.scaled_dot_product_attention

        def spy(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kw):
            self.calls.append((attn_mask is None, bool(is_causal)))
            return real(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, **kw)

        monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)


def count_packed_checks(monkeypatch) -> list[int]:
    import transformers.masking_utils as masking

    calls = [0]
    real = masking.find_packed_sequence_indices

    def counting(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(masking, "find_packed_sequence_indices", counting)
    return calls


def test_the_training_forward_builds_no_attention_mask(monkeypatch):
    packed_checks = count_packed_checks(monkeypatch)
    sdpa = SdpaSpy(monkeypatch)
    cfg = tiny_cfg()
    model = build_model(cfg, vocab_size=50257)
    x = blocks(200)[0][:2]
    model(input_ids=x, use_cache=False)  # plain SDPA first: the spies do see the usual mask path
    assert packed_checks[0] > 0
    packed_checks[0], sdpa.calls = 0, []

    result = train(model, blocks(600), blocks(100, seed=1), cfg, emit=lambda *a, **k: None)
    assert result.steps > 0 and packed_checks[0] == 0
    training_calls = sdpa.calls
    assert training_calls and all(no_mask and causal for no_mask, causal in training_calls)
    assert any("no attention mask" in o for o in result.optimizations)
    assert model.config._attn_implementation == "sdpa"  # restored for generation and saving


def test_mask_free_causal_attention_gives_the_plain_sdpa_loss():
    cfg = tiny_cfg(model_overrides={"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0})
    model = build_model(cfg, vocab_size=50257).eval()
    inputs, labels = blocks(300)
    plain = model(input_ids=inputs, labels=labels, use_cache=False).loss
    assert use_causal_attention(model) and model.config._attn_implementation == CAUSAL_ATTENTION
    causal = model(input_ids=inputs, labels=labels, use_cache=False).loss
    torch.testing.assert_close(causal, plain)


def test_compile_pads_the_short_last_batch_so_it_compiles_once(monkeypatch):
    """7 blocks in batches of 4: the last batch has 3 blocks, padded to 4 with a block that has no labels."""
    from torch._dynamo.testing import CompileCounter

    counter = CompileCounter()
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: real_compile(model, backend=counter))
    torch._dynamo.reset()
    cfg = tiny_cfg(compile=True, epochs=2, model_overrides={"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0})
    train_blocks = blocks(7 * 32)
    assert train_blocks[0].shape[0] == 7
    events: list = []
    frames_after_warmup = []

    def emit(event):
        events.append(event)
        if event.type == "phase" and event.name == "compile":
            frames_after_warmup.append(counter.frame_count)

    model = build_model(cfg, vocab_size=50257)
    result = train(model, train_blocks, blocks(64, seed=1), cfg, emit)
    assert result.steps == 4 and result.compile_seconds is not None and result.compile_seconds > 0
    assert frames_after_warmup and counter.frame_count == frames_after_warmup[0]  # nothing compiled after the warm-up
    # Every real token was trained on once per epoch: the filler block added none.
    assert result.tokens_trained == 2 * int((train_blocks[1][:, 1:] != -100).sum())
    torch._dynamo.reset()


def test_the_filler_block_changes_no_gradient():
    """One step on 3 real blocks equals the same step on those 3 plus the all-masked filler."""
    cfg = tiny_cfg(model_overrides={"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0})
    train_blocks = blocks(3 * 32)

    def grads(compile_padding: bool):
        model = build_model(cfg, vocab_size=50257)
        s = prepare(model, train_blocks, blocks(64, seed=1), cfg)
        if compile_padding:  # what prepare does for compile=True, without compiling
            s.pad_block = s.n_blocks
            s.inputs = torch.cat([s.inputs, s.inputs[:1]])
            s.labels = torch.cat([s.labels, torch.full_like(s.labels[:1], -100)])
            s.valid_tokens = (s.labels[:, 1:] != -100).sum(dim=1)
        idx, real = s.batch(torch.arange(3), 0)
        assert idx.shape[0] == (4 if compile_padding else 3) and real == 3
        loss, _ = s.forward_backward((idx, real))
        return loss, [p.grad.clone() for p in model.parameters()]

    loss_a, grads_a = grads(False)
    loss_b, grads_b = grads(True)
    torch.testing.assert_close(loss_a, loss_b)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b)


def test_learning_rate_warms_up_then_decays_by_cosine_to_the_floor():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1e-3)
    scheduler = make_scheduler(optimizer, total_steps=100, warmup=0.05, min_lr_ratio=0.1)
    lrs = []
    for _ in range(100):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert warmup_steps(0.05, 100) == 5
    assert lrs[0] == 0.0 and lrs[1:6] == pytest.approx([2e-4, 4e-4, 6e-4, 8e-4, 1e-3])
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:]))  # never rises after the peak
    assert lrs[-1] == pytest.approx(1e-4, rel=0.05) and min(lrs[5:]) >= 1e-4 - 1e-12
    # halfway through the decay the cosine is at the middle of peak and floor
    assert lrs[5 + 95 // 2] == pytest.approx(1e-4 + 0.5 * 9e-4, rel=0.03)
    assert warmup_steps(0.0, 10) == 1  # the first step never runs at the full peak


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("compile_", [True, False])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_optimizations_name_exactly_what_the_session_runs(fused, compile_, attn):
    cfg = tiny_cfg(fused_adamw=fused, compile=compile_, optimizer="adamw")  # (the default, auto, is Muon: below)
    model = build_model(cfg, vocab_size=50257)
    model.set_attn_implementation(attn)
    s = prepare(model, blocks(200), blocks(64, seed=1), cfg)
    opts = s.optimizations()
    really_fused = bool(s.optimizer.defaults.get("fused"))
    assert ("fused AdamW" in opts) == really_fused == fused  # torch has a fused AdamW for the CPU too
    assert any(o.startswith("torch.compile") for o in opts) == (s.forward is not s.model) == compile_
    assert any("no attention mask" in o for o in opts) == (model.config._attn_implementation == CAUSAL_ATTENTION) == (attn == "sdpa")
    assert ("eager attention" in opts) == (attn == "eager")
    assert not any("bf16" in o or "TF32" in o for o in opts)  # a CPU runs neither
    assert not any("host sync" in o for o in opts)  # there is no host/device split on a CPU to avoid syncing over
    assert "data resident on cpu" in opts and "loss read back every 2 steps" in opts


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(bookcorpus_like_rows(120, seed=3)) + "\n", encoding="utf-8")
    return path


def run_cfg(corpus, out, **kw):
    return tiny_cfg(data=str(corpus), rows=100, eval_rows=20, tokenizer="gpt2-bundled", out=str(out), **kw)


def test_token_cache_is_listed_only_when_it_was_read_or_written(corpus, tmp_path, monkeypatch):
    from core.pretrain import data

    first = run_pretrain(run_cfg(corpus, tmp_path / "cold"), log=quiet)
    assert first["token_cache"] == "written" and "token ids cached on disk for the next run" in first["optimizations"]
    warm = run_pretrain(run_cfg(corpus, tmp_path / "warm"), log=quiet)
    assert warm["token_cache"] == "hit" and any("on-disk cache" in o for o in warm["optimizations"])
    off = run_pretrain(run_cfg(corpus, tmp_path / "off", token_cache=False), log=quiet)
    assert off["token_cache"] == "off" and not any("cache" in o for o in off["optimizations"])

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(data, "write_cache", disk_full)
    corpus.write_text(corpus.read_text(encoding="utf-8") + "one more row .\n", encoding="utf-8")  # a cache miss
    failed = run_pretrain(run_cfg(corpus, tmp_path / "failed"), log=quiet)
    assert failed["token_cache"] == "failed" and not any("cache" in o for o in failed["optimizations"])
    assert any("could not write the token cache" in e.get("message", "")
               for e in iter_jsonl(tmp_path / "failed" / "events.jsonl"))


def test_compile_is_its_own_phase_outside_the_training_time(corpus, tmp_path, monkeypatch):
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: real_compile(model, backend="eager"))
    summary = run_pretrain(run_cfg(corpus, tmp_path / "run", compile=True), log=quiet)
    assert summary["status"] == "completed" and summary["compile_seconds"] > 0
    assert summary["phases"]["compile"] == summary["compile_seconds"]
    phases = [e["name"] for e in iter_jsonl(tmp_path / "run" / "events.jsonl") if e["type"] == "phase"]
    assert phases.index("compile") < phases.index("train")
    assert read_json(tmp_path / "run" / "summary.json")["optimizations"] == summary["optimizations"]


@pytest.mark.gpu
def test_a_training_step_makes_no_host_sync_on_the_gpu():
    """torch raises on any synchronizing call inside the block (sync debug mode "error")."""
    cfg = tiny_cfg(batch_size=8)
    model = build_model(cfg, vocab_size=50257)
    s = prepare(model, blocks(40 * 32), blocks(64, seed=1), cfg)
    order = torch.randperm(s.n_blocks, device=s.device)
    assert s.cuda and s.fused and s.causal
    s.step(*s.batch(order, 0))  # the first step initialises kernels and the optimizer state
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i in range(1, 4):
            s.step(*s.batch(order, i))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert "no per-step host sync (only at log steps)" in s.optimizations()


def test_the_chunked_loss_trains_and_scores_exactly_as_the_full_logits_do():
    """--chunked-loss on and off: the same step's loss and gradients, the same held-out loss, named only when on."""
    cfg = tiny_cfg(model_overrides={"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0})
    train_blocks, held_out = blocks(5 * 32), blocks(3 * 32, seed=1)

    def run(setting: str):
        torch.manual_seed(0)
        model = build_model(cfg, vocab_size=50257)
        s = prepare(model, train_blocks, held_out, dataclasses.replace(cfg, chunked_loss=setting))
        assert (s.body is not None) == (setting == "on")
        assert any("128 positions at a time" in o for o in s.optimizations()) == (setting == "on")
        loss, _ = s.forward_backward(s.batch(torch.arange(5), 0, micro=3), micro=3)  # two micro-batches
        return loss, [p.grad.clone() for p in model.parameters()], s.evaluate(micro=2)

    loss_on, grads_on, held_on = run("on")
    loss_off, grads_off, held_off = run("off")
    torch.testing.assert_close(loss_on, loss_off, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads_on, grads_off):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert held_on == pytest.approx(held_off, rel=1e-5)


def test_the_default_optimizer_is_muon_and_adamw_with_fsdp_and_the_summary_names_it():
    cfg = tiny_cfg()
    assert cfg.optimizer == "auto" and cfg.optimizer_used == "muon"
    assert dataclasses.replace(cfg, fsdp=True).optimizer_used == "adamw"
    assert dataclasses.replace(cfg, optimizer="adamw").optimizer_used == "adamw"
    s = prepare(build_model(cfg, vocab_size=50257), blocks(200), blocks(64, seed=1), cfg)
    opts = s.optimizations()
    assert any(o.startswith("Muon (torch.optim.Muon)") for o in opts) and "fused AdamW" not in opts
    assert type(s.optimizer).__name__ == "MuonWithAdamW"
