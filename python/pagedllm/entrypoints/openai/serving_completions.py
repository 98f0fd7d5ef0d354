"""POST /v1/completions: one engine request per prompt, ``n`` choices each (choice index
``prompt_index * n + sample_index``), streamed as SSE chunks or returned whole.

``echo`` prepends the prompt (and, with ``logprobs``, its prompt logprobs) to each choice;
``max_tokens=0`` returns the prompt only (the engine runs one token, which is dropped), which
is how lm-evaluation-harness scores loglikelihoods.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pagedllm.entrypoints.openai.logprobs_format import CompletionLogprobs
from pagedllm.entrypoints.openai.protocol import CompletionRequest, parse_completion_request
from pagedllm.entrypoints.openai.serving import EngineInput, ServingContext
from pagedllm.entrypoints.openai.serving_run import ServingRun, respond
from pagedllm.outputs import CompletionOutput, RequestOutput


class _Choice:
    def __init__(self, index: int, logprobs: CompletionLogprobs | None) -> None:
        self.index = index
        self.text: list[str] = []
        self.num_tokens = 0
        self.logprobs = logprobs
        self.finish_reason: str | None = None
        self.stop_reason: int | str | None = None
        self.echoed = False


class _CompletionRun(ServingRun):
    """Folds the engine deltas of one completion request into choices and chunks."""

    def __init__(self, ctx: ServingContext, req: CompletionRequest,
                 inputs: Sequence[EngineInput], model: str) -> None:
        self.ctx = ctx
        self.req = req
        self.inputs = inputs
        self.model = model
        self.id = f"cmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.n = req.params.n
        self.prompt_only = req.max_tokens == 0
        token_text = ctx.tokenizer.decode_token
        self.choices = [
            _Choice(i, None if req.logprobs is None
                    else CompletionLogprobs(token_text, req.logprobs))
            for i in range(len(inputs) * self.n)]
        self.prompt_logprobs: list[list[Any]] = [[] for _ in inputs]

    def feed(self, prompt_index: int, output: RequestOutput) -> list[dict[str, Any]]:
        """Folds one delta in; returns the chunk choices it produces."""
        if output.prompt_logprobs:
            self.prompt_logprobs[prompt_index].extend(output.prompt_logprobs)
        pieces = []
        for sample in output.outputs:
            piece = self._feed_sample(prompt_index, sample)
            if piece is not None:
                pieces.append(piece)
        return pieces

    def _feed_sample(self, prompt_index: int, sample: CompletionOutput) -> dict[str, Any] | None:
        choice = self.choices[prompt_index * self.n + sample.index]
        text, token_ids, logprobs = sample.text, sample.token_ids, sample.logprobs
        if self.prompt_only:
            text, token_ids, logprobs = "", [], []
        chunk_logprobs: dict[str, Any] | None = None
        if self.req.echo and not choice.echoed and (token_ids or sample.finish_reason):
            choice.echoed = True
            text = self._prompt_text(prompt_index) + text
            if choice.logprobs is not None:
                prompt_ids = self.inputs[prompt_index].token_ids
                positions = self.prompt_logprobs[prompt_index]
                positions = positions + [None] * (len(prompt_ids) - len(positions))
                chunk_logprobs = choice.logprobs.extend(prompt_ids, positions)
        if choice.logprobs is not None and token_ids:
            new = choice.logprobs.extend(token_ids, logprobs or [None] * len(token_ids))
            if chunk_logprobs is None:
                chunk_logprobs = new
            else:
                for key, values in new.items():
                    chunk_logprobs[key].extend(values)
        choice.text.append(text)
        choice.num_tokens += len(token_ids)
        if sample.finish_reason is not None:
            choice.finish_reason = "length" if self.prompt_only else sample.finish_reason
            choice.stop_reason = None if self.prompt_only else sample.stop_reason
        if not text and not token_ids and sample.finish_reason is None:
            return None
        return {"index": choice.index, "text": text, "logprobs": chunk_logprobs,
                "finish_reason": choice.finish_reason, "stop_reason": choice.stop_reason}

    def _prompt_text(self, prompt_index: int) -> str:
        item = self.inputs[prompt_index]
        if item.text is not None:
            return item.text
        return self.ctx.tokenizer.decode(item.token_ids, skip_special_tokens=False)

    def usage(self) -> dict[str, int]:
        prompt = sum(len(item.token_ids) for item in self.inputs)
        completion = sum(c.num_tokens for c in self.choices)
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion}

    def chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": "text_completion", "created": self.created,
                "model": self.model, "choices": choices}

    def response(self) -> dict[str, Any]:
        choices = [{"index": c.index, "text": "".join(c.text),
                    "logprobs": None if c.logprobs is None else c.logprobs.as_dict(),
                    "finish_reason": c.finish_reason, "stop_reason": c.stop_reason}
                   for c in self.choices]
        body = self.chunk(choices)
        body["usage"] = self.usage()
        return body


async def create_completion(ctx: ServingContext, request: Request) -> Response:
    req = parse_completion_request(await ctx.read_json(request), ctx.limits, ctx.defaults)
    model = ctx.check_model(req.model)
    inputs = []
    for prompt in req.prompts:
        if isinstance(prompt, str):
            inputs.append(EngineInput(prompt, await ctx.encode(prompt, req.add_special_tokens)))
        else:
            inputs.append(EngineInput(None, prompt))
    params = [ctx.engine_params(len(item.token_ids), req.params, req.max_tokens)
              for item in inputs]
    run = _CompletionRun(ctx, req, inputs, model)
    streams = await ctx.submit(run.id, inputs, params)
    return await respond(ctx, request, run, streams)
