"""Incremental detokenization of a growing token stream, with stop strings.

Text is decoded over a sliding window of tokens: the tokens released by the previous update
(left context, so spacing decodes as it does inside the sequence) followed by the unreleased
ones (from ``read_offset``). New text is released only once the window no longer ends in an
incomplete UTF-8 sequence, so a character split across tokens never shows up as U+FFFD
mid-stream. Stop strings are searched in the text each update adds, including matches that
straddle earlier text; with ``include_stop_str_in_output=False`` the longest tail that could
still become the start of a stop string is held back from the visible text, so visible text
is never cut later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

_REPLACEMENT_CHAR = "\ufffd"
_PROMPT_CONTEXT_TOKENS = 5


class Decoder(Protocol):
    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str: ...


def find_stop_string(text: str, num_new_chars: int,
                     stop: Sequence[str]) -> tuple[str, int] | None:
    """The first stop string to complete among matches ending in the last ``num_new_chars``
    characters of ``text`` (the one ending earliest; on a tie, the one starting earliest),
    and its start index; None if there is none. Chunking the text differently never changes
    the answer."""
    if num_new_chars <= 0:
        return None
    best: tuple[str, int] | None = None
    old_len = len(text) - num_new_chars
    for candidate in stop:
        start = text.find(candidate, max(0, old_len - len(candidate) + 1))
        if start < 0:
            continue
        end = start + len(candidate)
        if best is None or (end, start) < (best[1] + len(best[0]), best[1]):
            best = (candidate, start)
    return best


def partial_stop_length(text: str, stop: Sequence[str]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of a stop string."""
    longest = 0
    for candidate in stop:
        for k in range(min(len(candidate) - 1, len(text)), longest, -1):
            if text.endswith(candidate[:k]):
                longest = k
                break
    return longest


class IncrementalDetokenizer:
    """Turns the tokens of one sample into text, one update at a time.

    ``prompt_token_ids`` supply the left context (the last few prompt tokens) so the first
    generated token decodes with the spacing it has inside the sequence.
    """

    def __init__(self, tokenizer: Decoder, prompt_token_ids: Sequence[int], *,
                 skip_special_tokens: bool = True, stop: Sequence[str] = (),
                 include_stop_str_in_output: bool = False, min_tokens: int = 0) -> None:
        self._tokenizer = tokenizer
        self._skip_special_tokens = skip_special_tokens
        self._stop = list(stop)
        self._include_stop = include_stop_str_in_output
        self._min_tokens = min_tokens
        self._ids = list(prompt_token_ids[-_PROMPT_CONTEXT_TOKENS:])
        self._read_offset = len(self._ids)
        self._num_output_tokens = 0
        self.output_text = ""
        self.stop_reason: str | None = None

    @property
    def stopped(self) -> bool:
        return self.stop_reason is not None

    def update(self, new_token_ids: Sequence[int], finished: bool = False) -> str | None:
        """Appends tokens; returns the stop string if one ended the text in this update.

        ``finished`` flushes text still held for an incomplete UTF-8 sequence. After a stop
        string matched, further updates are ignored.
        """
        if self.stopped:
            return None
        old_len = len(self.output_text)
        for token_id in new_token_ids:
            self._ids.append(token_id)
            self._num_output_tokens += 1
            self.output_text += self._next_text(flush=False)
        if finished:
            self.output_text += self._next_text(flush=True)
        if self._stop and self._num_output_tokens > self._min_tokens:
            match = find_stop_string(self.output_text, len(self.output_text) - old_len,
                                     self._stop)
            if match is not None:
                stop_str, start = match
                end = start + len(stop_str) if self._include_stop else start
                self.output_text = self.output_text[:end]
                self.stop_reason = stop_str
                return stop_str
        return None

    def _next_text(self, flush: bool) -> str:
        if self._read_offset >= len(self._ids):
            return ""
        decode = self._tokenizer.decode
        skip = self._skip_special_tokens
        prefix_text = decode(self._ids[:self._read_offset], skip)
        full_text = decode(self._ids, skip)
        if len(full_text) <= len(prefix_text):
            return ""
        if full_text.endswith(_REPLACEMENT_CHAR) and not flush:
            return ""
        del self._ids[:self._read_offset]
        self._read_offset = len(self._ids)
        return full_text[len(prefix_text):]

    def visible_text(self, finished: bool) -> str:
        """The text that may be shown now: all of it when finished or stopped, else without
        a tail that could still turn out to be the start of a stop string."""
        if finished or self.stopped or self._include_stop or not self._stop:
            return self.output_text
        held = partial_stop_length(self.output_text, self._stop)
        return self.output_text[:len(self.output_text) - held]
