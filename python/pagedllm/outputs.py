"""Result types of a generation request, shaped like vLLM's."""

from __future__ import annotations

from dataclasses import dataclass, field

PromptLogprobs = list["dict[int, Logprob] | None"]
SampleLogprobs = list["dict[int, Logprob]"]


@dataclass
class Logprob:
    """Log-probability of one token at one position, its rank and its text."""

    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    """One sample of a request.

    ``logprobs`` holds one dict per generated token (the sampled token plus the top-N);
    ``stop_reason`` is the stop string or stop token id that ended the sample, None for EOS.
    """

    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: SampleLogprobs | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None

    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class RequestMetrics:
    """Wall-clock times (``time.time()``) of a request's milestones."""

    arrival_time: float
    first_token_time: float | None = None
    last_token_time: float | None = None
    finished_time: float | None = None


@dataclass
class RequestOutput:
    """What a request produced so far (or in this step, for DELTA requests).

    ``prompt_logprobs`` starts with None for the first prompt position, as in vLLM.
    """

    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: PromptLogprobs | None
    outputs: list[CompletionOutput]
    finished: bool
    metrics: RequestMetrics | None = field(default=None, repr=False)
    num_cached_tokens: int = 0
