"""The generation core on a tiny random Qwen2: batching must not change a single token in fp32."""

from __future__ import annotations

import copy

import pytest
import torch

from core.errors import OutOfMemory
from core.eval.config import DEMO_DATA
from core.lm.demo import build_tiny_qwen2, demo_skew_tokens, gpt2_tokenizer
from core.lm.engine import EngineStats, generate_answers, score_choices
from core.mmmlu import extract_answer, load_csv, select_questions

MAX_NEW = 24


@pytest.fixture(scope="module")
def tiny():
    """(model, tokenizer): the demo recipe with a milder skew and seed 3, whose rows end at EOS
    after 3 to 15 tokens or run to the limit (the demo's own seed ends rows only at token 3), so
    finished rows leave the batch several times and rows still running go on past the cut."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64-wide model is faster on one thread than two
    tokenizer = gpt2_tokenizer()
    tokenizer.padding_side = "left"
    model = build_tiny_qwen2(tokenizer, seed=3, skew_tokens=demo_skew_tokens(tokenizer), skew=2.0)
    yield model, tokenizer
    torch.set_num_threads(threads)


def _prompts(count=10):
    """Questions from the demo CSV: on these the demo model ends some replies at EOS early."""
    questions, _ = select_questions(load_csv(DEMO_DATA), "all", None)
    return [q.prompt for q in questions[:count]]


def _single(model, tokenizer, prompts, **kwargs):
    return [generate_answers(model, tokenizer, [p], max_new_tokens=MAX_NEW, batch_size=1, **kwargs)[0][0] for p in prompts]


@pytest.fixture(scope="module")
def reference(tiny):
    model, tokenizer = tiny
    return _single(model, tokenizer, _prompts())


def test_reference_has_rows_that_stop_early_and_rows_that_run_to_the_limit(reference):
    lengths = [g.new_tokens for g in reference]
    assert len({n for n in lengths if n < MAX_NEW}) >= 4 and max(lengths) == MAX_NEW


def test_batch_one_is_plain_generate(tiny, reference):
    model, tokenizer = tiny
    prompt = _prompts()[1]
    enc = tokenizer([prompt], return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=MAX_NEW)[0, enc["input_ids"].shape[1]:].tolist()
    eos = tokenizer.eos_token_id
    if eos in out:
        out = out[: out.index(eos) + 1]
    assert reference[1].new_tokens == len(out)
    assert reference[1].text == tokenizer.decode(out, skip_special_tokens=True)


@pytest.mark.parametrize("options", [{"batch_size": 4}, {"batch_size": 10}, {"batch_size": 4, "free_finished": False}, {"batch_size": 3, "static_cache": True}])
def test_batched_equals_batch_one_in_fp32(tiny, reference, options):
    model, tokenizer = tiny
    results, _ = generate_answers(model, tokenizer, _prompts(), max_new_tokens=MAX_NEW, **options)
    assert [(g.text, g.new_tokens) for g in results] == [(g.text, g.new_tokens) for g in reference]


def test_batches_report_results_and_token_counts(tiny, reference):
    model, tokenizer = tiny
    seen = []
    generate_answers(model, tokenizer, _prompts(), max_new_tokens=MAX_NEW, batch_size=4, on_batch=seen.append)
    assert [b.batch_size for b in seen] == [4, 4, 2]
    assert sorted(i for b in seen for i in b.indices) == list(range(10))
    assert sum(b.tokens for b in seen) == sum(g.new_tokens for g in reference)


def test_stop_at_answer_keeps_every_answer_and_saves_tokens(tiny, reference):
    model, tokenizer = tiny
    results, _ = generate_answers(model, tokenizer, _prompts(), max_new_tokens=MAX_NEW, batch_size=5, stop_at_answer=True)
    assert [extract_answer(g.text) for g in results] == [extract_answer(g.text) for g in reference]
    assert sum(g.new_tokens for g in results) < sum(g.new_tokens for g in reference)


def test_continuous_batching_backend_matches(tiny, reference):
    model, tokenizer = tiny
    results, _ = generate_answers(model, tokenizer, _prompts()[:4], max_new_tokens=MAX_NEW, batch_size=4, backend="continuous")
    assert [g.text for g in results] == [g.text for g in reference[:4]]


def test_out_of_memory_halves_the_batch_and_goes_on(tiny, reference, monkeypatch):
    model, tokenizer = tiny
    real_generate = model.generate
    sizes = []

    def generate_with_small_memory(*args, **kwargs):
        rows = kwargs["input_ids"].shape[0]
        sizes.append(rows)
        if rows > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(model, "generate", generate_with_small_memory)
    messages = []
    results, final = generate_answers(model, tokenizer, _prompts(), max_new_tokens=MAX_NEW, batch_size=8, log=messages.append)
    assert final == 2
    assert sizes[:3] == [8, 4, 2]
    assert [g.text for g in results] == [g.text for g in reference]
    assert any("retrying with batch size 4" in m for m in messages)


def test_out_of_memory_at_batch_one_gives_up(tiny, monkeypatch):
    model, tokenizer = tiny

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(model, "generate", no_memory)
    with pytest.raises(OutOfMemory):
        generate_answers(model, tokenizer, _prompts(3), max_new_tokens=4, batch_size=2)


def test_should_stop_ends_between_batches(tiny):
    model, tokenizer = tiny
    seen = []
    results, _ = generate_answers(
        model, tokenizer, _prompts(6), max_new_tokens=4, batch_size=2, on_batch=seen.append, should_stop=lambda: len(seen) >= 1
    )
    assert len(seen) == 1 and sum(r is not None for r in results) == 2


def test_logprob_batched_equals_single_and_a_plain_forward(tiny):
    model, tokenizer = tiny
    prompts = _prompts(6)
    batched, _ = score_choices(model, tokenizer, prompts, batch_size=4)
    for prompt, scores in zip(prompts, batched):
        single, _ = score_choices(model, tokenizer, [prompt], batch_size=1)
        assert single[0] == pytest.approx(scores, abs=1e-4)
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logprobs = torch.log_softmax(model(ids).logits[0, -1].float(), dim=-1)
        expected = {k: logprobs[tokenizer.encode(k)[0]].item() for k in "ABCD"}
        assert scores == pytest.approx(expected, abs=1e-4)


def test_left_padding_is_required(tiny):
    model, tokenizer = tiny
    tokenizer.padding_side = "right"
    try:
        with pytest.raises(ValueError, match="padding_side='left'"):
            generate_answers(model, tokenizer, ["x"], max_new_tokens=2)
    finally:
        tokenizer.padding_side = "left"


def test_finished_rows_leave_the_batch(tiny, reference, monkeypatch):
    model, tokenizer = tiny
    real_generate = model.generate
    rows_per_call = []

    def counting_generate(*args, **kwargs):
        rows_per_call.append(kwargs["input_ids"].shape[0])
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(model, "generate", counting_generate)
    results, _ = generate_answers(model, tokenizer, _prompts(), max_new_tokens=MAX_NEW, batch_size=10)
    # Rows end at several different steps, so the batch shrinks more than once, each time
    # continuing from the pruned cache of the call before.
    assert rows_per_call[0] == 10 and len(rows_per_call) >= 3
    assert rows_per_call == sorted(rows_per_call, reverse=True) and len(set(rows_per_call)) == len(rows_per_call)
    assert [g.text for g in results] == [g.text for g in reference]


def test_settings_counted_from_the_call_start_keep_finished_rows_in_the_batch(tiny, reference, monkeypatch):
    """min_new_tokens would act again in a continuation call, so then rows are not dropped."""
    model, tokenizer = tiny
    monkeypatch.setattr(model.generation_config, "min_new_tokens", 6)
    prompts = _prompts()
    single = _single(model, tokenizer, prompts)
    # In force: rows of the reference that ended at EOS before token 6 now run longer.
    assert min(g.new_tokens for g in reference) < 6 <= min(g.new_tokens for g in single)
    batched, _ = generate_answers(model, tokenizer, prompts, max_new_tokens=MAX_NEW, batch_size=10)
    assert [(g.text, g.new_tokens) for g in batched] == [(g.text, g.new_tokens) for g in single]


@pytest.mark.parametrize("options", [{}, {"free_finished": False}, {"static_cache": True}], ids=["drop", "keep", "static"])
def test_rows_are_reported_the_step_they_end_even_in_one_batch(tiny, reference, options):
    model, tokenizer = tiny
    stats = EngineStats()
    seen = []
    results, _ = generate_answers(model, tokenizer, _prompts(), max_new_tokens=MAX_NEW, batch_size=10, stats=stats,
                                  on_row=lambda i, g: seen.append((i, g.new_tokens, stats.tokens)), **options)
    assert sorted(i for i, _, _ in seen) == list(range(10))  # every row exactly once
    assert [(g.text, g.new_tokens) for g in results] == [(g.text, g.new_tokens) for g in reference]
    lengths = [n for _, n, _ in seen]
    assert lengths == sorted(lengths)  # in the order the rows ended
    _, first_length, tokens_then = seen[0]
    assert first_length < MAX_NEW and tokens_then < stats.tokens  # reported while the long rows still generated
    assert stats.tokens == sum(g.new_tokens for g in reference) and stats.batches == 1


def test_should_stop_ends_mid_batch_and_keeps_the_rows_that_ended(tiny, reference):
    model, tokenizer = tiny
    seen = []
    results, _ = generate_answers(model, tokenizer, _prompts(), max_new_tokens=MAX_NEW, batch_size=10,
                                  on_row=lambda i, g: seen.append(i), should_stop=lambda: len(seen) >= 2)
    kept = [i for i, g in enumerate(results) if g is not None]
    assert 2 <= len(kept) < 10 and sorted(seen) == kept
    assert all((results[i].text, results[i].new_tokens) == (reference[i].text, reference[i].new_tokens) for i in kept)


@pytest.mark.gpu
def test_fp32_batched_equals_batch_one_on_the_gpu(tiny, reference):
    """The identity the CPU tests show, on CUDA kernels: one batch of every prompt, dropping finished rows."""
    model, tokenizer = tiny
    cuda_model = copy.deepcopy(model).to("cuda")
    single = [generate_answers(cuda_model, tokenizer, [p], max_new_tokens=MAX_NEW, batch_size=1)[0][0] for p in _prompts()]
    batched, _ = generate_answers(cuda_model, tokenizer, _prompts(), max_new_tokens=MAX_NEW, batch_size=10)
    assert [(g.text, g.new_tokens) for g in batched] == [(g.text, g.new_tokens) for g in single]
