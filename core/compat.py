"""Where the supported transformers versions differ, in one place (5.17 on the GPU box up to the newest).

Every other module calls these helpers instead of testing versions itself. Each helper looks at
the installed API (a field, a parameter name), not at a version number, so a release that renames
something back still works.
"""

from __future__ import annotations

import inspect
from functools import lru_cache


@lru_cache(maxsize=1)
def generate_cache_name() -> str:
    """What `generate` calls its KV cache, as keyword and as output field.

    transformers 5.17 says `past_key_values`; later 5.x renamed both to `cache` (the old keyword
    still works there, with a deprecation warning, until 6.0).
    """
    from transformers.generation.utils import GenerateDecoderOnlyOutput

    return "cache" if "cache" in GenerateDecoderOnlyOutput.__dataclass_fields__ else "past_key_values"


def cache_kwargs(cache) -> dict:
    """`generate(**cache_kwargs(c))` continues from cache `c` (nothing when c is None)."""
    return {} if cache is None else {generate_cache_name(): cache}


def output_cache(output):
    """The KV cache a `generate(..., return_dict_in_generate=True)` output carries."""
    return getattr(output, generate_cache_name())


@lru_cache(maxsize=1)
def _continuous_page_name() -> str:
    from transformers import ContinuousBatchingConfig

    params = inspect.signature(ContinuousBatchingConfig.__init__).parameters
    return "page_size" if "page_size" in params else "block_size"


def continuous_batching_config(*, use_cuda_graph: bool, page_size: int | None = None, **options):
    """A ContinuousBatchingConfig; its KV page size is `block_size` in 5.17 and `page_size` later."""
    from transformers import ContinuousBatchingConfig

    if page_size is not None:
        options[_continuous_page_name()] = page_size
    return ContinuousBatchingConfig(use_cuda_graph=use_cuda_graph, **options)
