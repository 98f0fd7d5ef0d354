"""LLMEngine: the Python side of one engine (tokenize, submit, step, detokenize).

Shared by the LLM class and the HTTP server. A request with ``n`` samples (``best_of`` when
set) runs as that many core requests ``"<id>#<i>"`` (just ``"<id>"`` for one), added together
as parallel samples that share the prompt's KV blocks, whose outputs are gathered into one
RequestOutput. A beam search is one core request whose result take_beam_search_output()
returns once it finished. Not thread-safe: call it from one thread at a time.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pagedllm.beam_search import BeamSearchOutput, BeamSearchParams, make_beam_search_output
from pagedllm.engine_args import EngineArgs
from pagedllm.generation_config import sampling_defaults
from pagedllm.inputs import PromptType, parse_prompt
from pagedllm.outputs import RequestOutput
from pagedllm.request_state import RequestState
from pagedllm.resolve import resolve_model, resolve_tokenizer
from pagedllm.sampling_params import SamplingParams
from pagedllm.tokenizer import Tokenizer

_STAT_FIELDS = (
    "num_running", "num_waiting", "num_kv_blocks_total", "num_kv_blocks_used",
    "num_kv_slots_used", "num_preemptions", "num_steps", "num_prompt_tokens_computed",
    "num_generation_tokens", "last_step_num_scheduled_tokens", "last_step_num_scheduled_seqs",
    "num_prefix_cache_queries", "num_prefix_cache_hits", "num_cached_blocks",
    "num_kv_slots_allocated", "num_kv_slots_filled", "num_kv_blocks_saved_by_sharing")
# Fractions in [0, 1].
_FLOAT_STAT_FIELDS = ("kv_internal_waste",)


def _import_core() -> Any:
    try:
        from pagedllm import _core
    except ImportError as exc:
        raise ImportError(
            "the pagedllm C++ extension (pagedllm._core) is not available: install pagedllm "
            "with `pip install .` from the source tree (see README)") from exc
    return _core


class LLMEngine:
    """Loads a model and runs requests through the C++ engine.

    ``model`` is a directory, a Hugging Face id or ``"demo"``; the other keyword arguments
    are EngineArgs fields. Raises FileNotFoundError (missing model, weights or
    tokenizer.json), ValueError (unsupported architecture or dtype, corrupt files, bad
    options), MemoryError or ImportError (extension not built).
    """

    def __init__(self, model: str, tokenizer: str | None = None, **engine_args: Any) -> None:
        self.args = EngineArgs(model=model, tokenizer=tokenizer, **engine_args)
        args = self.args
        self.model_dir = resolve_model(args.model, args.revision, download_dir=args.download_dir)
        tokenizer_dir = self.model_dir
        if args.tokenizer is not None:
            tokenizer_dir = resolve_tokenizer(
                args.tokenizer, args.tokenizer_revision, download_dir=args.download_dir)
        self._tokenizer = Tokenizer(tokenizer_dir)
        core = _import_core()
        self._core = core.Engine(args.to_core_config(self.model_dir))
        self.model_info = self._core.model_info
        self._eos_token_ids = frozenset(self.model_info.eos_token_ids)
        self._requests: dict[str, RequestState] = {}
        self._samples: dict[str, tuple[RequestState, int]] = {}
        self._ignored: set[str] = set()
        self._num_cached_tokens: dict[str, int] = {}
        self._beams: dict[str, tuple[list[int], BeamSearchParams]] = {}
        self._beam_outputs: dict[str, BeamSearchOutput] = {}

    @classmethod
    def from_engine_args(cls, args: EngineArgs) -> LLMEngine:
        return cls(**dataclasses.asdict(args))

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def get_tokenizer(self) -> Tokenizer:
        return self._tokenizer

    @property
    def max_model_len(self) -> int:
        return int(self.model_info.max_model_len)

    def default_sampling_params(self) -> SamplingParams:
        """SamplingParams with the model's generation_config.json defaults applied."""
        overrides = sampling_defaults(self.model_dir)
        try:
            return SamplingParams(**overrides)
        except ValueError:
            return SamplingParams()

    def add_request(self, request_id: str, prompt: PromptType,
                    params: SamplingParams | None = None,
                    arrival_time: float | None = None) -> None:
        """Queues a request. Raises ValueError (duplicate id, empty or oversize prompt, token
        id outside the vocabulary, invalid params) and then changes nothing."""
        if not isinstance(request_id, str):
            raise TypeError(f"request_id must be a str, got {type(request_id).__name__}")
        if request_id in self._requests:
            raise ValueError(f"request id {request_id!r} is already in use")
        params = params if params is not None else SamplingParams()
        text, token_ids = parse_prompt(prompt, self._tokenizer)
        core_ids = ([request_id] if params.num_samples == 1
                    else [f"{request_id}#{i}" for i in range(params.num_samples)])
        for core_id in core_ids:
            if core_id in self._samples:
                raise ValueError(f"request id {core_id!r} is already in use")
            if core_id in self._ignored:
                raise ValueError(f"request id {core_id!r} was aborted and the engine has not "
                                 "stepped since; use another id or step() first")
        derived_max = None
        if params.max_tokens is None:
            derived_max = max(1, self.max_model_len - len(token_ids))
        # best_of > n ranks the samples by cumulative logprob: every token's logprob is needed.
        ranked = params if params.num_samples == params.n or params.logprobs is not None \
            else params.clone(logprobs=0)
        core_params = [ranked.to_core(max_tokens=derived_max,
                                      seed=None if params.seed is None else params.seed + i,
                                      with_prompt_logprobs=i == 0)
                       for i in range(len(core_ids))]
        if len(core_ids) == 1:
            self._core.add_request(core_ids[0], token_ids, core_params[0])
        else:
            self._core.add_parallel_requests(core_ids, token_ids, core_params)
        state = RequestState(request_id, text, token_ids, params, core_ids, self._tokenizer,
                             self._eos_token_ids, arrival_time)
        self._requests[request_id] = state
        for index, core_id in enumerate(core_ids):
            self._samples[core_id] = (state, index)

    def add_beam_search_request(self, request_id: str, prompt: PromptType,
                                params: BeamSearchParams) -> None:
        """Queues a beam search; its result comes from take_beam_search_output() once a step
        finished it. Raises ValueError as add_request does (and then changes nothing)."""
        if not isinstance(request_id, str):
            raise TypeError(f"request_id must be a str, got {type(request_id).__name__}")
        if (request_id in self._requests or request_id in self._samples
                or request_id in self._beams or request_id in self._ignored):
            raise ValueError(f"request id {request_id!r} is already in use")
        _, token_ids = parse_prompt(prompt, self._tokenizer)
        self._core.add_beam_search_request(request_id, token_ids, params.to_core())
        self._beams[request_id] = (token_ids, params)

    def take_beam_search_output(self, request_id: str) -> BeamSearchOutput | None:
        """The result of a finished beam search (once), or None."""
        return self._beam_outputs.pop(request_id, None)

    def abort_request(self, request_id: str) -> bool:
        """Aborts a request at once: it reports no further output (as in vLLM) and its KV
        blocks are freed. False if the id is unknown or already finished."""
        if self._beams.pop(request_id, None) is not None:
            if self._core.abort_request(request_id):
                self._ignored.add(request_id)
            return True
        state = self._requests.pop(request_id, None)
        if state is None:
            return False
        self._num_cached_tokens.pop(request_id, None)
        for sample in state.samples:
            self._samples.pop(sample.core_id, None)
            if not sample.finished and self._core.abort_request(sample.core_id):
                self._ignored.add(sample.core_id)
        return True

    def has_unfinished_requests(self) -> bool:
        return bool(self._requests) or bool(self._beams)

    def get_num_unfinished_requests(self) -> int:
        return len(self._requests) + len(self._beams)

    def step(self) -> list[RequestOutput]:
        """Runs one engine step; the outputs of the requests that progressed in it."""
        touched: dict[str, RequestState] = {}
        for out in self._core.step():
            entry = self._samples.get(out.request_id)
            if entry is None:
                beam = self._beams.pop(out.request_id, None) if out.finished else None
                if beam is not None:
                    self._beam_outputs[out.request_id] = make_beam_search_output(
                        beam[0], beam[1], out, self._tokenizer, self._eos_token_ids)
                elif out.finished:
                    self._ignored.discard(out.request_id)
                continue
            state, index = entry
            if index == 0:
                self._num_cached_tokens[state.request_id] = int(out.num_cached_tokens)
            if state.process(index, out) and self._core.abort_request(out.request_id):
                self._ignored.add(out.request_id)
            if state.samples[index].finished:
                del self._samples[out.request_id]
            touched[state.request_id] = state
        outputs = []
        for state in touched.values():
            output = state.make_output()
            if output is not None:
                output.num_cached_tokens = self._num_cached_tokens.get(state.request_id, 0)
                outputs.append(output)
            if state.finished:
                self._requests.pop(state.request_id, None)
                self._num_cached_tokens.pop(state.request_id, None)
        return outputs

    def reset_prefix_cache(self) -> bool:
        """Drops every cached prefix block; False (nothing dropped) while requests hold KV
        blocks."""
        return bool(self._core.reset_prefix_cache())

    def get_stats(self) -> dict[str, int | float]:
        """Engine counters (ints) and ``kv_internal_waste``: unused slots of the KV blocks held
        by running requests over their slots (a shared block counts once)."""
        stats = self._core.stats()
        out: dict[str, int | float] = {name: int(getattr(stats, name)) for name in _STAT_FIELDS}
        for name in _FLOAT_STAT_FIELDS:
            out[name] = float(getattr(stats, name))
        return out
