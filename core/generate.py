"""`llmlab generate` and the app's Chat screen: a model continues a prompt, its tokens streamed as they come.

The model is a pretraining run's model/, a fine-tune run's base + adapter, or any model folder
(plus --adapter). Greedy unless --temperature > 0, then sampling with --top-p.
"""

from __future__ import annotations

import math
import sys
import threading
from pathlib import Path
from typing import Callable

import click

from core.errors import UsageError
from core.lm.quantize import QUANTIZE


def model_of_run(run_dir: str | Path, base: str | None = None) -> tuple[str, list[str], bool]:
    """(model, adapters, demo) of a run folder that holds a model: model/ (pretraining), or base + adapter/ (fine-tune).

    `base` replaces the base a fine-tune run recorded (its folder moved, or another copy of it).
    """
    from core.runs import CONFIG, read_json

    path = Path(run_dir).expanduser()
    config = read_json(path / CONFIG)
    if config is None:
        raise UsageError(f"{path} is not a run folder (no readable config.json); pass --run RUN_DIR or --model DIR")
    if (path / "model" / "config.json").is_file():
        if base:
            raise UsageError(f"{path} holds its own model (model/); --model replaces a fine-tune run's base only, so "
                             f"drop --model")
        return str(path / "model"), [], False
    if (path / "adapter" / "adapter_config.json").is_file():
        adapter = [str(path / "adapter")]
        if base:
            return base, adapter, False
        if config.get("demo"):
            return "demo", adapter, True
        recorded = config.get("model_path")
        if recorded and Path(recorded).exists():
            return recorded, adapter, False
        raise UsageError(f"the base model {path} was tuned on ({recorded or 'not recorded'}) is not there any more; "
                         f"pass --model DIR with --run to point at it")
    from core.kinds import get as get_kind

    kind = get_kind(config.get("kind"))
    raise UsageError(f"{path} is {kind.noun if kind else 'a run'} folder without a model to talk to (no model/ and no "
                     f"adapter/); pass a finished pretraining or fine-tune run, or --model DIR")


class ModelChat:
    """A model loaded once (lazily, in whatever thread asks first) that streams replies."""

    def __init__(self, model: str, adapters: list[str] | tuple = (), demo: bool = False, quantize: str = "none",
                 chat: bool = False) -> None:
        """`quantize`: load the base with bitsandbytes (nf4, int8); `chat`: each prompt is the user turn of the
        tokenizer's chat template."""
        from core.lm.choice import choose_model

        self.choice = choose_model(model, list(adapters), demo, quantize=quantize, chat=chat)
        self.loaded = None
        self.context = None

    def load(self):
        from core.lm.choice import load_for_generation
        from core.lm.loading import model_context

        if self.loaded is None:
            self.loaded = load_for_generation(self.choice)
            self.context = model_context(self.choice.path)
        return self.loaded

    def encode(self, prompt: str, max_new_tokens: int):
        """The prompt's token ids on the model's device; UsageError when it and the reply do not fit the context."""
        loaded = self.load()
        prompt = self.choice.render([prompt])[0]
        ids = loaded.tokenizer(prompt, return_tensors="pt")["input_ids"].to(next(loaded.model.parameters()).device)
        if self.context and ids.shape[1] + max_new_tokens > self.context:
            raise UsageError(f"the prompt is {ids.shape[1]} tokens and --max-new-tokens {max_new_tokens}: more than the "
                             f"model's {self.context}-token context; shorten the prompt or lower --max-new-tokens")
        return ids

    def reply(self, prompt: str, on_text: Callable[[str], None], max_new_tokens: int = 64, temperature: float = 0.0,
              top_p: float = 1.0, seed: int = 0) -> str:
        """Generate a continuation of `prompt`, handing each decoded piece to `on_text` as it comes; returns it all."""
        import torch
        from transformers import TextIteratorStreamer

        ids = self.encode(prompt, max_new_tokens)
        tok, model = self.loaded.tokenizer, self.loaded.model
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else \
            {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        errors: list[BaseException] = []

        def work() -> None:
            try:
                torch.manual_seed(seed)
                with torch.inference_mode():
                    model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                   streamer=streamer, pad_token_id=pad, **sampling)
            except BaseException as exc:  # re-raised in the caller's thread
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        pieces = []
        for piece in streamer:
            pieces.append(piece)
            on_text(piece)
        thread.join()
        if errors:
            raise errors[0]
        return "".join(pieces)


@click.command("generate")
@click.option("--run", "run_dir", default=None, metavar="RUN_DIR", help="A finished pretraining or fine-tune run folder.")
@click.option("--model", default=None, help="A model folder or hub id; with --run, the base of its adapter (when that "
                                            "base moved).")
@click.option("--adapter", multiple=True, metavar="DIR", help="A LoRA adapter on top of --model.")
@click.option("--prompt", "prompts", multiple=True, required=True, help="The text to continue (repeatable).")
@click.option("--max-new-tokens", type=int, default=64, show_default=True)
@click.option("--temperature", type=float, default=0.0, show_default=True, help="0 = greedy; above 0 samples.")
@click.option("--top-p", type=float, default=1.0, show_default=True, help="Nucleus sampling, with --temperature > 0.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quantize", type=click.Choice(QUANTIZE), default="none", show_default=True,
              help="Load the base quantized with bitsandbytes (nf4 or int8).")
@click.option("--chat", is_flag=True, help="Each prompt is the user turn of the tokenizer's chat template (instruction "
                                           "models); the reply is the assistant's.")
def generate_command(run_dir, model, adapter, prompts, max_new_tokens, temperature, top_p, seed, quantize, chat) -> int:
    """Continue a prompt with a model, streaming its tokens as they come."""
    if not run_dir and not model:
        raise UsageError("give --run RUN_DIR (a finished pretraining or fine-tune run) or --model DIR")
    if not all(p.strip() for p in prompts):
        raise UsageError("--prompt is empty; give the text the model should continue")
    if max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens must be at least 1 (got {max_new_tokens})")
    if not (math.isfinite(temperature) and temperature >= 0) or not 0 < top_p <= 1:  # nan fails both comparisons
        raise UsageError(f"--temperature must be a number of 0 or more and --top-p in (0, 1] (got {temperature}, {top_p})")
    demo = False
    if run_dir:
        model, extra, demo = model_of_run(run_dir, base=model)
        adapter = (*extra, *adapter)
    session = ModelChat(model, adapter, demo, quantize=quantize, chat=chat)
    for note in session.choice.notes:
        click.echo(f"llmlab: {note}", err=True)
    for prompt in prompts:  # every prompt checked first: nothing is printed for a command that then refuses
        session.encode(prompt, max_new_tokens)
    for prompt in prompts:
        sys.stdout.write(prompt + ("\n" if chat else ""))
        sys.stdout.flush()
        session.reply(prompt, lambda piece: (sys.stdout.write(piece), sys.stdout.flush()), max_new_tokens, temperature,
                   top_p, seed)
        sys.stdout.write("\n")
    return 0
