"""pagedllm: high-throughput LLM inference with a paged KV cache and a C++ engine core.

``from pagedllm import LLM, SamplingParams`` mirrors vLLM's offline API. Heavy modules
(the engine, tokenizers, huggingface_hub) load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pagedllm.outputs import CompletionOutput, Logprob, RequestOutput
from pagedllm.sampling_params import RequestOutputKind, SamplingParams

__version__ = "0.1.0"

_LAZY = {
    "LLM": "pagedllm.llm",
    "LLMEngine": "pagedllm.engine",
    "EngineArgs": "pagedllm.engine_args",
    "Tokenizer": "pagedllm.tokenizer",
    "BeamSearchParams": "pagedllm.beam_search",
    "BeamSearchOutput": "pagedllm.beam_search",
    "BeamSearchSequence": "pagedllm.beam_search",
}

__all__ = ["LLM", "LLMEngine", "EngineArgs", "SamplingParams", "RequestOutput",
           "RequestOutputKind", "CompletionOutput", "Logprob", "Tokenizer", "BeamSearchParams",
           "BeamSearchOutput", "BeamSearchSequence", "__version__"]

if TYPE_CHECKING:
    from pagedllm.beam_search import BeamSearchOutput, BeamSearchParams, BeamSearchSequence
    from pagedllm.engine import LLMEngine
    from pagedllm.engine_args import EngineArgs
    from pagedllm.llm import LLM
    from pagedllm.tokenizer import Tokenizer


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pagedllm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
