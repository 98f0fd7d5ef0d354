"""Logprobs in OpenAI's two wire formats.

Completions (legacy): ``{"tokens", "token_logprobs", "top_logprobs", "text_offset"}``, one
entry per token; a position without logprobs (the first prompt token) has None. Chat:
``{"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}``. An input position is
``{token_id: Logprob}`` as the engine reports it: the chosen token first (its true rank), then
the top-N ranked 1..N. -inf becomes -9999.0 (JSON has no infinity).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from pagedllm.outputs import Logprob

TokenText = Callable[[int], str]
_FLOOR = -9999.0


def finite(value: float) -> float:
    return value if math.isfinite(value) else _FLOOR


def _text(token_id: int, entry: Logprob | None, token_text: TokenText) -> str:
    if entry is not None and entry.decoded_token is not None:
        return entry.decoded_token
    return token_text(token_id)


def _top(position: dict[int, Logprob], num_top: int) -> list[tuple[int, Logprob]]:
    ranked = [(t, lp) for t, lp in position.items() if lp.rank is not None and lp.rank <= num_top]
    ranked.sort(key=lambda item: item[1].rank or 0)
    return ranked[:num_top]


class CompletionLogprobs:
    """Accumulates the completions-format logprobs of one choice; ``text_offset`` counts
    characters of the choice's returned text from ``start_offset``."""

    def __init__(self, token_text: TokenText, num_top: int, start_offset: int = 0) -> None:
        self.token_text = token_text
        self.num_top = num_top
        self.offset = start_offset
        self.tokens: list[str] = []
        self.token_logprobs: list[float | None] = []
        self.top_logprobs: list[dict[str, float] | None] = []
        self.text_offset: list[int] = []

    def extend(self, token_ids: Sequence[int],
               positions: Sequence[dict[int, Logprob] | None]) -> dict[str, Any]:
        """Appends tokens and their logprobs; returns the format of just these tokens."""
        start = len(self.tokens)
        for token_id, position in zip(token_ids, positions):
            entry = position.get(token_id) if position else None
            text = _text(token_id, entry, self.token_text)
            self.tokens.append(text)
            self.text_offset.append(self.offset)
            self.offset += len(text)
            if entry is None:
                self.token_logprobs.append(None)
                self.top_logprobs.append(None)
                continue
            self.token_logprobs.append(finite(entry.logprob))
            top = {_text(t, lp, self.token_text): finite(lp.logprob)
                   for t, lp in _top(position, self.num_top)}
            top.setdefault(text, finite(entry.logprob))
            self.top_logprobs.append(top)
        return self.as_dict(start)

    def as_dict(self, start: int = 0) -> dict[str, Any]:
        return {"tokens": self.tokens[start:], "token_logprobs": self.token_logprobs[start:],
                "top_logprobs": self.top_logprobs[start:],
                "text_offset": self.text_offset[start:]}


def chat_logprobs(token_ids: Sequence[int], positions: Sequence[dict[int, Logprob] | None],
                  num_top: int, token_text: TokenText) -> dict[str, Any]:
    """The chat-format logprobs of generated tokens."""
    content = []
    for token_id, position in zip(token_ids, positions):
        entry = position.get(token_id) if position else None
        text = _text(token_id, entry, token_text)
        top = [] if position is None else [
            _chat_entry(_text(t, lp, token_text), lp.logprob) for t, lp in _top(position, num_top)]
        item = _chat_entry(text, entry.logprob if entry is not None else _FLOOR)
        item["top_logprobs"] = top
        content.append(item)
    return {"content": content}


def _chat_entry(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": finite(logprob), "bytes": list(text.encode("utf-8"))}
