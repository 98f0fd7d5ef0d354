"""ServingContext: what every endpoint shares (engine, config, limits, metrics) and the steps
common to completions and chat: model check, tokenization, length checks, submission."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from pagedllm.entrypoints.openai.async_engine import (AsyncEngine, EngineDeadError,
                                                      QueueFullError, RequestStream)
from pagedllm.entrypoints.openai.errors import (APIError, bad_request, model_not_found,
                                                server_busy)
from pagedllm.entrypoints.openai.metrics import ServerMetrics
from pagedllm.entrypoints.openai.protocol import Limits
from pagedllm.entrypoints.openai.server_config import ServerConfig
from pagedllm.outputs import RequestOutput
from pagedllm.sampling_params import RequestOutputKind, SamplingParams

_OFFLOAD_CHARS = 20000
MAX_N = 256


@dataclass
class EngineInput:
    """One tokenized prompt, ready for the engine."""

    text: str | None
    token_ids: list[int]

    def as_prompt(self) -> dict[str, Any]:
        return {"prompt": self.text, "prompt_token_ids": self.token_ids}


class ServingContext:
    def __init__(self, engine: AsyncEngine, config: ServerConfig) -> None:
        self.engine = engine
        self.config = config
        self.metrics = ServerMetrics(engine, config.model_name)
        engine.on_request_finished = self.metrics.request_finished
        self.limits = Limits(vocab_size=engine.vocab_size, max_model_len=engine.max_model_len,
                             max_n=MAX_N)
        self.defaults = engine.engine.default_sampling_params()
        self.tokenizer = engine.tokenizer
        self.started = time.time()

    async def read_json(self, request: Request) -> Any:
        """The parsed JSON body: 413 when over the size limit, 400 when empty or malformed."""
        limit = self.config.max_request_body_bytes
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise _too_large(limit)
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        data = b"".join(chunks)
        if not data.strip():
            raise bad_request("the request body is empty; send a JSON object")
        try:
            return json.loads(data)
        except RecursionError as exc:
            raise bad_request("invalid JSON: nested too deeply") from exc
        except ValueError as exc:
            raise bad_request(f"invalid JSON: {exc}") from exc

    def check_model(self, name: str | None) -> str:
        """The served name to report; 404 for a name this server does not serve."""
        if name is None or name == "":
            return self.config.model_name
        if name not in self.config.served_model_names:
            raise model_not_found(name)
        return name

    async def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        """Token ids of ``text``; 400 for text that is not valid Unicode (lone surrogates)."""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise bad_request(f"the text is not valid Unicode: {exc.reason} at index "
                              f"{exc.start}") from exc
        if len(text) > _OFFLOAD_CHARS:
            return await asyncio.to_thread(self.tokenizer.encode, text, add_special_tokens)
        return self.tokenizer.encode(text, add_special_tokens)

    async def render_chat(self, messages: list[dict[str, Any]], **options: Any) -> str:
        try:
            return self.tokenizer.apply_chat_template(
                messages, chat_template=self.config.chat_template, **options)
        except (ValueError, TypeError, LookupError, AttributeError) as exc:
            raise bad_request(f"cannot apply the chat template: {exc}", "messages") from exc

    def engine_params(self, prompt_len: int, params: SamplingParams,
                      max_tokens: int | None, where: str = "prompt") -> SamplingParams:
        """``params`` with max_tokens fitted to the model length (clamped, as vLLM does) and
        DELTA outputs. 400 when the prompt leaves no room for a generated token."""
        max_model_len = self.limits.max_model_len
        if prompt_len >= max_model_len:
            raise bad_request(
                f"This model's maximum context length is {max_model_len} tokens. However, "
                f"your {where} has {prompt_len} tokens, which leaves no room for the "
                "completion. Please reduce the length of the input.", where)
        room = max_model_len - prompt_len
        limit = room if max_tokens is None else max(1, min(max_tokens, room))
        try:
            return params.clone(max_tokens=limit, output_kind=RequestOutputKind.DELTA)
        except ValueError as exc:
            raise bad_request(str(exc)) from exc

    async def submit(self, request_id: str, inputs: Sequence[EngineInput],
                     params: Sequence[SamplingParams]) -> list[RequestStream]:
        """Queues one engine request per input (ids ``<request_id>-<i>``); all or none.
        503 when the waiting queue is full, 400 when the engine refuses an input."""
        engine = self.engine
        try:
            engine.check_capacity(sum(p.num_samples for p in params))
        except QueueFullError as exc:
            self.metrics.rejected.inc()
            raise server_busy(str(exc)) from exc
        except EngineDeadError as exc:
            raise server_busy(str(exc)) from exc
        requests = [(f"{request_id}-{index}", item.as_prompt(), item_params)
                    for index, (item, item_params) in enumerate(zip(inputs, params))]
        try:
            streams = await engine.generate(requests)
        except (ValueError, TypeError) as exc:
            raise bad_request(str(exc)) from exc
        except (QueueFullError, EngineDeadError) as exc:
            raise server_busy(str(exc)) from exc
        return streams

    def abort_all(self, streams: Sequence[RequestStream]) -> None:
        for stream in streams:
            if not stream.finished:
                self.engine.abort(stream.request_id)


async def merge_streams(streams: Sequence[RequestStream]
                        ) -> AsyncIterator[tuple[int, RequestOutput]]:
    """``(input index, delta)`` from several streams as they come; raises the first error."""
    if len(streams) == 1:
        async for output in streams[0]:
            yield 0, output
        return
    queue: asyncio.Queue[tuple[int, RequestOutput | BaseException | None]] = asyncio.Queue()

    async def pump(index: int, stream: RequestStream) -> None:
        try:
            async for output in stream:
                queue.put_nowait((index, output))
        except Exception as exc:
            queue.put_nowait((index, exc))
        finally:
            queue.put_nowait((index, None))

    tasks = [asyncio.ensure_future(pump(i, s)) for i, s in enumerate(streams)]
    try:
        remaining = len(tasks)
        while remaining:
            index, item = await queue.get()
            if item is None:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()


def engine_error(exc: BaseException) -> APIError:
    """The API error for an engine failure during generation."""
    return APIError(503, str(exc) or "the engine stopped", code="engine_unavailable")


def _too_large(limit: int) -> APIError:
    return APIError(413, f"the request body is larger than {limit} bytes "
                         "(--max-request-body-bytes)", code="request_too_large")
