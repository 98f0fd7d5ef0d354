"""Conversion of the core's per-position logprobs into vLLM's dict form."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pagedllm.outputs import Logprob

TokenText = Callable[[int], str]


def logprob_dict(entry: Any, token_text: TokenText | None) -> dict[int, Logprob]:
    """``{token_id: Logprob}`` of one position from a ``_core.TokenLogprobs``: the chosen
    token first (with its true rank), then the top-N alternatives ranked 1..N."""

    def text(token_id: int) -> str | None:
        return None if token_text is None else token_text(token_id)

    result = {entry.token_id: Logprob(entry.logprob, entry.rank, text(entry.token_id))}
    for rank, (token_id, logprob) in enumerate(entry.top, start=1):
        if token_id not in result:
            result[token_id] = Logprob(logprob, rank, text(token_id))
    return result
