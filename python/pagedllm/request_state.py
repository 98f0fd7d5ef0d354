"""Python-side state of one request: its samples' tokens, text, logprobs and finish state.

The core reports deltas per sample (core request); RequestState folds them into vLLM-shaped
RequestOutputs. Text goes through an IncrementalDetokenizer per sample, which also finds stop
strings; a sample stopped by a string is finished here before the core knows (the engine
aborts its core request).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from pagedllm.detokenizer import IncrementalDetokenizer
from pagedllm.logprobs import logprob_dict
from pagedllm.outputs import (CompletionOutput, PromptLogprobs, RequestMetrics,
                              RequestOutput, SampleLogprobs)
from pagedllm.sampling_params import RequestOutputKind, SamplingParams
from pagedllm.tokenizer import Tokenizer


class SampleState:
    """One of the ``n`` samples of a request (one core request)."""

    def __init__(self, index: int, core_id: str, prompt_token_ids: list[int],
                 params: SamplingParams, tokenizer: Tokenizer) -> None:
        self.index = index
        self.core_id = core_id
        self.token_ids: list[int] = []
        self.logprobs: SampleLogprobs | None = [] if params.logprobs is not None else None
        ranked = params.num_samples > params.n  # best_of: the core reports every logprob
        self.cumulative_logprob: float | None = (
            0.0 if params.logprobs is not None or ranked else None)
        self.finish_reason: str | None = None
        self.stop_reason: int | str | None = None
        self.changed = False
        self.detokenizer = None
        if params.detokenize:
            self.detokenizer = IncrementalDetokenizer(
                tokenizer, prompt_token_ids, skip_special_tokens=params.skip_special_tokens,
                stop=params.stop, include_stop_str_in_output=params.include_stop_str_in_output,
                min_tokens=params.min_tokens)
        self._emitted_text = 0
        self._emitted_tokens = 0

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def text(self) -> str:
        if self.detokenizer is None:
            return ""
        return self.detokenizer.visible_text(self.finished)

    def output(self, delta: bool, index: int | None = None) -> CompletionOutput:
        text = self.text()
        start_text = self._emitted_text if delta else 0
        start_tokens = self._emitted_tokens if delta else 0
        self._emitted_text = len(text)
        self._emitted_tokens = len(self.token_ids)
        logprobs = None if self.logprobs is None else self.logprobs[start_tokens:]
        return CompletionOutput(
            index=self.index if index is None else index, text=text[start_text:], token_ids=self.token_ids[start_tokens:],
            cumulative_logprob=self.cumulative_logprob, logprobs=logprobs,
            finish_reason=self.finish_reason, stop_reason=self.stop_reason)


class RequestState:
    """A request of ``params.n`` samples, from add_request until its final output."""

    def __init__(self, request_id: str, prompt: str | None, prompt_token_ids: list[int],
                 params: SamplingParams, core_ids: list[str], tokenizer: Tokenizer,
                 eos_token_ids: Collection[int], arrival_time: float | None = None) -> None:
        self.request_id = request_id
        self.prompt = prompt
        self.prompt_token_ids = prompt_token_ids
        self.params = params
        self.samples = [SampleState(i, core_id, prompt_token_ids, params, tokenizer)
                        for i, core_id in enumerate(core_ids)]
        self.metrics = RequestMetrics(arrival_time=arrival_time or time.time())
        self._tokenizer = tokenizer
        self._eos_token_ids = eos_token_ids
        self._token_text = tokenizer.decode_token if params.detokenize else None
        self.prompt_logprobs: PromptLogprobs | None = (
            [None] if params.prompt_logprobs is not None else None)
        self._emitted_prompt_logprobs = 0

    @property
    def finished(self) -> bool:
        return all(s.finished for s in self.samples)

    def process(self, index: int, out: Any) -> bool:
        """Folds one core output of sample ``index`` in. True when a stop string ended the
        sample while the core still runs it (the caller aborts the core request)."""
        sample = self.samples[index]
        if sample.finished:
            return False
        sample.changed = True
        self._add_prompt_logprobs(out)
        new_ids = list(out.new_token_ids)
        if new_ids:
            now = time.time()
            if self.metrics.first_token_time is None:
                self.metrics.first_token_time = now
            self.metrics.last_token_time = now
        sample.token_ids.extend(new_ids)
        if sample.cumulative_logprob is not None:
            for entry in out.new_logprobs:
                if sample.logprobs is not None:
                    sample.logprobs.append(logprob_dict(entry, self._token_text))
                sample.cumulative_logprob += entry.logprob
        stop_token = out.stop_token_id if out.finished and out.finish_reason == "stop" else None
        if stop_token is not None and (self.params.ignore_eos
                                       or stop_token not in self._eos_token_ids):
            if stop_token in self.params.stop_token_ids:
                sample.stop_reason = stop_token
        stopped_by_string = self._detokenize(sample, new_ids, out.finished, stop_token)
        if stopped_by_string:
            sample.finish_reason = "stop"
            sample.stop_reason = sample.detokenizer.stop_reason
        elif out.finished:
            sample.finish_reason = out.finish_reason or "stop"
        if self.finished:
            self.metrics.finished_time = time.time()
        return stopped_by_string and not out.finished

    def _detokenize(self, sample: SampleState, new_ids: list[int], finished: bool,
                    stop_token: int | None) -> bool:
        if sample.detokenizer is None:
            return False
        text_ids = new_ids
        if (stop_token is not None and not self.params.include_stop_str_in_output
                and text_ids and text_ids[-1] == stop_token):
            text_ids = text_ids[:-1]
        return sample.detokenizer.update(text_ids, finished=finished) is not None

    def _add_prompt_logprobs(self, out: Any) -> None:
        if self.prompt_logprobs is None or not out.prompt_logprobs:
            return
        start = out.prompt_logprobs_start
        for offset, entry in enumerate(out.prompt_logprobs):
            position = start + offset
            while len(self.prompt_logprobs) <= position:
                self.prompt_logprobs.append(None)
            self.prompt_logprobs[position] = logprob_dict(entry, self._token_text)

    def make_output(self) -> RequestOutput | None:
        """The output due after the latest changes, per ``params.output_kind``; None when
        nothing is due (FINAL_ONLY before the end). With best_of > n only the final output
        is due: the n samples of highest cumulative logprob, best first, indexed 0..n-1."""
        kind = self.params.output_kind
        finished = self.finished
        changed = [s for s in self.samples if s.changed]
        for sample in self.samples:
            sample.changed = False
        ranked = self.params.num_samples > self.params.n
        if (kind is RequestOutputKind.FINAL_ONLY or ranked) and not finished:
            return None
        if ranked:
            best = sorted(self.samples, key=lambda s: -s.cumulative_logprob)[:self.params.n]
            return RequestOutput(
                request_id=self.request_id, prompt=self.prompt,
                prompt_token_ids=self.prompt_token_ids, prompt_logprobs=self.prompt_logprobs,
                outputs=[s.output(False, index=i) for i, s in enumerate(best)], finished=True,
                metrics=self.metrics)
        delta = kind is RequestOutputKind.DELTA
        samples = changed if delta else self.samples
        prompt_logprobs = self.prompt_logprobs
        if delta and prompt_logprobs is not None:
            prompt_logprobs = prompt_logprobs[self._emitted_prompt_logprobs:]
            self._emitted_prompt_logprobs += len(prompt_logprobs)
        return RequestOutput(
            request_id=self.request_id, prompt=self.prompt,
            prompt_token_ids=self.prompt_token_ids, prompt_logprobs=prompt_logprobs,
            outputs=[s.output(delta) for s in samples], finished=finished,
            metrics=self.metrics)
