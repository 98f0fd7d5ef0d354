"""Per-request decoding controls, with vLLM's field names, defaults and error messages."""

from __future__ import annotations

import dataclasses
import enum
import numbers
from dataclasses import dataclass, field
from typing import Any

_GREEDY_EPS = 1e-5
_SEED_MOD = 2**64


class RequestOutputKind(enum.Enum):
    """What each RequestOutput of a request carries (vLLM's names)."""

    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


@dataclass
class SamplingParams:
    """Sampling parameters of one request; validated on construction (ValueError).

    ``best_of`` (default ``n``) samples are generated and the ``n`` with the highest
    cumulative logprob are returned, best first, once all have finished (vLLM's semantics).
    ``max_tokens=None`` means "up to max_model_len".
    """

    n: int = 1
    best_of: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False
    max_tokens: int | None = 16
    min_tokens: int = 0
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    detokenize: bool = True
    output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE
    extra_args: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.stop is None:
            self.stop = []
        elif isinstance(self.stop, str):
            self.stop = [self.stop]
        else:
            self.stop = list(self.stop)
        self.stop_token_ids = [] if self.stop_token_ids is None else list(self.stop_token_ids)
        if self.top_k == -1:
            self.top_k = 0
        self._verify_args()
        if self.temperature < _GREEDY_EPS:
            self.top_p = 1.0
            self.top_k = 0
            self.min_p = 0.0

    @property
    def sampling_type_greedy(self) -> bool:
        return self.temperature < _GREEDY_EPS

    def _verify_args(self) -> None:
        _check_int("n", self.n)
        if self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}.")
        if self.best_of is not None:
            _check_int("best_of", self.best_of)
            if self.best_of < self.n:
                raise ValueError(
                    "best_of must be greater than or equal to n, "
                    f"got n={self.n} and best_of={self.best_of}.")
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if not -2.0 <= value <= 2.0:
                raise ValueError(f"{name} must be in [-2, 2], got {value}.")
        if not self.repetition_penalty > 0.0:
            raise ValueError(
                f"repetition_penalty must be greater than zero, got {self.repetition_penalty}.")
        if not self.temperature >= 0.0:
            raise ValueError(f"temperature must be non-negative, got {self.temperature}.")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        _check_int("top_k", self.top_k)
        if self.top_k < 0:
            raise ValueError(
                f"top_k must be 0 or -1 (disable), or at least 1, got {self.top_k}.")
        if not 0.0 <= self.min_p <= 1.0:
            raise ValueError(f"min_p must be in [0, 1], got {self.min_p}.")
        if self.seed is not None:
            _check_int("seed", self.seed)
        if self.max_tokens is not None:
            _check_int("max_tokens", self.max_tokens)
            if self.max_tokens < 1:
                raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}.")
        _check_int("min_tokens", self.min_tokens)
        if self.min_tokens < 0:
            raise ValueError(
                f"min_tokens must be greater than or equal to 0, got {self.min_tokens}.")
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise ValueError(
                f"min_tokens must be less than or equal to max_tokens={self.max_tokens}, "
                f"got {self.min_tokens}.")
        for name in ("logprobs", "prompt_logprobs"):
            value = getattr(self, name)
            if value is not None:
                _check_int(name, value)
                if value < 0:
                    raise ValueError(f"{name} must be non-negative, got {value}.")
        for stop in self.stop:
            if not isinstance(stop, str):
                raise ValueError(f"stop must be a string or a list of strings, got {stop!r}.")
            if not stop:
                raise ValueError("stop cannot contain an empty string.")
        if self.stop and not self.detokenize:
            raise ValueError(
                "stop strings are only supported when detokenize is True. "
                "Set detokenize=True to use stop.")
        for token_id in self.stop_token_ids:
            _check_int("stop_token_ids", token_id)
        if not isinstance(self.output_kind, RequestOutputKind):
            raise ValueError(f"output_kind must be a RequestOutputKind, got {self.output_kind!r}.")

    @property
    def num_samples(self) -> int:
        """Samples generated: best_of, or n when best_of is unset."""
        return self.n if self.best_of is None else self.best_of

    def clone(self, **changes: Any) -> SamplingParams:
        """A validated copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def to_core(self, *, max_tokens: int | None = None, seed: int | None = None,
                with_prompt_logprobs: bool = True) -> Any:
        """The ``pagedllm._core.SamplingParams`` of one sample of this request.

        ``max_tokens`` replaces a ``None`` max_tokens (the engine derives it from
        max_model_len); ``seed`` replaces this object's seed (parallel samples).
        """
        from pagedllm import _core

        core = _core.SamplingParams()
        core.temperature = float(self.temperature)
        core.top_p = float(self.top_p)
        core.top_k = int(self.top_k)
        core.min_p = float(self.min_p)
        core.presence_penalty = float(self.presence_penalty)
        core.frequency_penalty = float(self.frequency_penalty)
        core.repetition_penalty = float(self.repetition_penalty)
        chosen_seed = self.seed if seed is None else seed
        core.seed = None if chosen_seed is None else int(chosen_seed) % _SEED_MOD
        limit = self.max_tokens if self.max_tokens is not None else max_tokens
        if limit is None:
            raise ValueError("max_tokens is None and no limit was derived from max_model_len")
        core.max_tokens = int(limit)
        core.min_tokens = int(self.min_tokens)
        core.stop_token_ids = [int(t) for t in self.stop_token_ids]
        core.ignore_eos = bool(self.ignore_eos)
        core.logprobs = -1 if self.logprobs is None else int(self.logprobs)
        wants_prompt = with_prompt_logprobs and self.prompt_logprobs is not None
        core.prompt_logprobs = int(self.prompt_logprobs) if wants_prompt else -1
        return core


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int, but is of type {type(value).__name__}")
