"""Generation over several processes: each rank answers its share of the prompts, rank 0 gets every row."""

from __future__ import annotations


def generate_sharded(model, tokenizer, prompts: list[str], on_row, **options):
    """generate_answers over this rank's share of `prompts` (all of them with one process).

    Rank 0 gets every row through `on_row(index, generation)`: its own share as each row ends, the
    other ranks' when they are done (gathered with torch.distributed). The other ranks call nothing.
    """
    from core.distributed import gather, world
    from core.lm.engine import generate_answers

    w = world()
    if not w.distributed:
        return generate_answers(model, tokenizer, prompts, on_row=on_row, **options)
    start, end = w.rank * len(prompts) // w.size, (w.rank + 1) * len(prompts) // w.size
    mine: list = []

    def local(i, generation):
        if w.main:
            on_row(start + i, generation)
        else:
            mine.append((start + i, generation))

    if end > start:
        generate_answers(model, tokenizer, prompts[start:end], on_row=local, **options)
    shares = gather(mine)
    if w.main:
        for share in shares[1:]:
            for i, generation in share:
                on_row(i, generation)
