"""POST /v1/chat/completions: the conversation rendered with the chat template, one engine
request with ``n`` choices, streamed as ``chat.completion.chunk`` events or returned whole."""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pagedllm.entrypoints.openai.logprobs_format import chat_logprobs
from pagedllm.entrypoints.openai.protocol import ChatRequest, parse_chat_request
from pagedllm.entrypoints.openai.serving import EngineInput, ServingContext
from pagedllm.entrypoints.openai.serving_run import ServingRun, respond
from pagedllm.outputs import CompletionOutput, RequestOutput


class _Choice:
    def __init__(self, index: int) -> None:
        self.index = index
        self.text: list[str] = []
        self.num_tokens = 0
        self.logprobs: list[dict[str, Any]] = []
        self.finish_reason: str | None = None
        self.stop_reason: int | str | None = None
        self.started = False


class _ChatRun(ServingRun):
    """Folds the engine deltas of one chat request into choices and chunks."""

    def __init__(self, ctx: ServingContext, req: ChatRequest, item: EngineInput,
                 model: str) -> None:
        self.ctx = ctx
        self.req = req
        self.item = item
        self.model = model
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.choices = [_Choice(i) for i in range(req.params.n)]

    def feed(self, prompt_index: int, output: RequestOutput) -> list[dict[str, Any]]:
        pieces = []
        for sample in output.outputs:
            pieces.extend(self._feed_sample(sample))
        return pieces

    def _feed_sample(self, sample: CompletionOutput) -> list[dict[str, Any]]:
        choice = self.choices[sample.index]
        pieces = []
        if not choice.started:
            choice.started = True
            pieces.append({"index": choice.index,
                           "delta": {"role": "assistant", "content": ""},
                           "logprobs": None, "finish_reason": None})
        logprobs = None
        if self.req.logprobs and sample.token_ids:
            logprobs = chat_logprobs(sample.token_ids,
                                     sample.logprobs or [None] * len(sample.token_ids),
                                     self.req.top_logprobs, self.ctx.tokenizer.decode_token)
            choice.logprobs.extend(logprobs["content"])
        choice.text.append(sample.text)
        choice.num_tokens += len(sample.token_ids)
        if sample.finish_reason is not None:
            choice.finish_reason = sample.finish_reason
            choice.stop_reason = sample.stop_reason
        if sample.text or logprobs is not None or sample.finish_reason is not None:
            delta = {"content": sample.text} if sample.text else {}
            piece: dict[str, Any] = {"index": choice.index, "delta": delta,
                                     "logprobs": logprobs,
                                     "finish_reason": choice.finish_reason}
            if choice.finish_reason is not None:
                piece["stop_reason"] = choice.stop_reason
            pieces.append(piece)
        return pieces

    def usage(self) -> dict[str, int]:
        prompt = len(self.item.token_ids)
        completion = sum(c.num_tokens for c in self.choices)
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion}

    def chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": choices}

    def response(self) -> dict[str, Any]:
        choices = [{"index": c.index,
                    "message": {"role": "assistant", "content": "".join(c.text)},
                    "logprobs": {"content": c.logprobs} if self.req.logprobs else None,
                    "finish_reason": c.finish_reason, "stop_reason": c.stop_reason}
                   for c in self.choices]
        return {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.model, "choices": choices, "usage": self.usage()}


async def create_chat_completion(ctx: ServingContext, request: Request) -> Response:
    req = parse_chat_request(await ctx.read_json(request), ctx.limits, ctx.defaults)
    model = ctx.check_model(req.model)
    text = await ctx.render_chat(
        req.messages, add_generation_prompt=req.add_generation_prompt,
        continue_final_message=req.continue_final_message, tools=req.tools,
        **req.chat_template_kwargs)
    item = EngineInput(text, await ctx.encode(text, req.add_special_tokens))
    params = ctx.engine_params(len(item.token_ids), req.params, req.max_tokens,
                               where="messages")
    run = _ChatRun(ctx, req, item, model)
    streams = await ctx.submit(run.id, [item], [params])
    return await respond(ctx, request, run, streams)
