"""Beam search with vLLM's interface and Hugging Face transformers' semantics.

``LLM.beam_search(prompts, BeamSearchParams(beam_width=4, max_tokens=32))`` returns one
BeamSearchOutput per prompt with ``beam_width`` sequences, best score first. The search runs in
the C++ engine (``Engine::add_beam_search_request``), where the beams share KV blocks with
copy-on-write; its results equal ``model.generate(num_beams=beam_width, do_sample=False,
length_penalty=..., early_stopping=..., max_new_tokens=max_tokens,
num_return_sequences=beam_width)``: a finished sequence scores
``cum_logprob / len(generated tokens) ** length_penalty``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from pagedllm.inputs import PromptType
from pagedllm.outputs import Logprob

if TYPE_CHECKING:
    from pagedllm.engine import LLMEngine
    from pagedllm.tokenizer import Tokenizer

EarlyStoppingArg = Union[bool, str]


@dataclass
class BeamSearchParams:
    """Controls of a beam search; validated on construction (ValueError).

    ``early_stopping`` is transformers' flag: False (default: stop when no running beam can
    beat the worst finished one at its current length), True (stop once ``beam_width``
    sequences finished) or ``"never"``. ``temperature`` > 0 divides the logits before the
    log-softmax (0, the default, and 1 leave them as they are).
    """

    beam_width: int
    max_tokens: int
    ignore_eos: bool = False
    temperature: float = 0.0
    length_penalty: float = 1.0
    include_stop_str_in_output: bool = False
    early_stopping: EarlyStoppingArg = False

    def __post_init__(self) -> None:
        for name in ("beam_width", "max_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name} must be an int, but is of type {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}.")
        if not (math.isfinite(self.temperature) and self.temperature >= 0.0):
            raise ValueError(f"temperature must be non-negative, got {self.temperature}.")
        if not math.isfinite(self.length_penalty):
            raise ValueError(f"length_penalty must be finite, got {self.length_penalty}.")
        if self.early_stopping not in (False, True, "never"):
            raise ValueError(
                f"early_stopping must be False, True or 'never', got {self.early_stopping!r}.")

    def to_core(self) -> Any:
        """The ``pagedllm._core.BeamSearchParams`` of this search."""
        from pagedllm import _core

        core = _core.BeamSearchParams()
        core.beam_width = int(self.beam_width)
        core.max_tokens = int(self.max_tokens)
        core.ignore_eos = bool(self.ignore_eos)
        core.temperature = float(self.temperature)
        core.length_penalty = float(self.length_penalty)
        core.early_stopping = {False: _core.EarlyStopping.HEURISTIC, True: _core.EarlyStopping.TRUE,
                               "never": _core.EarlyStopping.NEVER}[self.early_stopping]
        return core


@dataclass
class BeamSearchSequence:
    """One finished sequence: ``tokens`` holds the prompt then the generated tokens (as in
    vLLM); ``logprobs`` has one ``{token_id: Logprob}`` per generated token; ``score`` is
    transformers' ``sequences_scores`` entry."""

    tokens: list[int]
    logprobs: list[dict[int, Logprob]]
    cum_logprob: float = 0.0
    score: float = 0.0
    text: str | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    num_prompt_tokens: int = 0

    @property
    def output_token_ids(self) -> list[int]:
        return self.tokens[self.num_prompt_tokens:]


@dataclass
class BeamSearchOutput:
    """The ``beam_width`` sequences of one prompt, best score first."""

    sequences: list[BeamSearchSequence] = field(default_factory=list)


def make_beam_search_output(prompt_token_ids: list[int], params: BeamSearchParams,
                            core_output: Any, tokenizer: Tokenizer,
                            eos_token_ids: frozenset[int]) -> BeamSearchOutput:
    """The BeamSearchOutput of a finished core output (its ``beams``): text decoded without
    the EOS that ended a sequence unless ``include_stop_str_in_output``."""
    sequences = []
    for beam in core_output.beams:
        token_ids = list(beam.token_ids)
        text_ids = token_ids
        if (beam.finish_reason == "stop" and token_ids and token_ids[-1] in eos_token_ids
                and not params.include_stop_str_in_output):
            text_ids = token_ids[:-1]
        logprobs = [{t: Logprob(float(lp), None, tokenizer.decode_token(t))}
                    for t, lp in zip(token_ids, beam.logprobs)]
        sequences.append(BeamSearchSequence(
            tokens=list(prompt_token_ids) + token_ids, logprobs=logprobs,
            cum_logprob=float(beam.cum_logprob), score=float(beam.score),
            text=tokenizer.decode(text_ids, skip_special_tokens=True),
            finish_reason=beam.finish_reason,
            num_prompt_tokens=len(prompt_token_ids)))
    return BeamSearchOutput(sequences)


def run_beam_search(engine: LLMEngine, prompts: Sequence[PromptType], params: BeamSearchParams,
                    request_ids: Iterator[str]) -> list[BeamSearchOutput]:
    """Runs one search per prompt to the end; outputs in the order of ``prompts``. Raises
    ValueError for a bad prompt or parameter (nothing of the batch is left running)."""
    ids: list[str] = []
    results: dict[str, BeamSearchOutput] = {}
    try:
        for prompt in prompts:
            request_id = next(request_ids)
            engine.add_beam_search_request(request_id, prompt, params)
            ids.append(request_id)
        pending = set(ids)
        while pending:
            if not engine.has_unfinished_requests():
                raise RuntimeError(f"beam searches {sorted(pending)} vanished from the engine")
            engine.step()
            for request_id in list(pending):
                output = engine.take_beam_search_output(request_id)
                if output is not None:
                    results[request_id] = output
                    pending.discard(request_id)
    except BaseException:
        for request_id in ids:
            if request_id not in results:
                engine.abort_request(request_id)
        raise
    return [results[request_id] for request_id in ids]
