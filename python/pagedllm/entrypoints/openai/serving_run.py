"""The part of an OpenAI request's life that chat and completions share: the engine's deltas
are folded into one response, or streamed as SSE chunks (then a usage chunk when asked for, and
``[DONE]``); the client leaving aborts the engine requests. Subclasses say how a delta becomes
choices (``feed``) and how chunks, usage and the whole response look."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pagedllm.entrypoints.openai.async_engine import EngineDeadError, RequestStream
from pagedllm.entrypoints.openai.serving import ServingContext, engine_error, merge_streams
from pagedllm.entrypoints.openai.streaming import (DONE, ClientDisconnected, SSEResponse,
                                                   until_disconnect)
from pagedllm.outputs import RequestOutput


class ServingRun:
    """One request's run; ``req`` has ``stream`` and ``include_usage``."""

    req: Any

    def feed(self, prompt_index: int, output: RequestOutput) -> list[dict[str, Any]]:
        """Folds one delta of prompt ``prompt_index`` in; returns the stream's new choices."""
        raise NotImplementedError

    def chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        raise NotImplementedError

    def usage(self) -> dict[str, int]:
        raise NotImplementedError

    def response(self) -> dict[str, Any]:
        raise NotImplementedError

    async def collect(self, streams: Sequence[RequestStream]) -> None:
        async for prompt_index, output in merge_streams(streams):
            self.feed(prompt_index, output)

    async def events(self, streams: Sequence[RequestStream]) -> AsyncIterator[Any]:
        try:
            async for prompt_index, output in merge_streams(streams):
                for piece in self.feed(prompt_index, output):
                    yield self.chunk([piece])
        except EngineDeadError as exc:
            yield engine_error(exc).body()
            yield DONE
            return
        if self.req.include_usage:
            final = self.chunk([])
            final["usage"] = self.usage()
            yield final
        yield DONE


async def respond(ctx: ServingContext, request: Request, run: ServingRun,
                  streams: Sequence[RequestStream]) -> Response:
    """The HTTP response of a submitted run: SSE when streaming, else the whole body (499 when
    the client left first)."""
    if run.req.stream:
        return SSEResponse(run.events(streams), on_close=lambda: ctx.abort_all(streams))
    try:
        await until_disconnect(request.receive, run.collect(streams),
                               lambda: ctx.abort_all(streams))
    except ClientDisconnected:
        return Response(status_code=499)
    except EngineDeadError as exc:
        return engine_error(exc).response()
    return JSONResponse(run.response())
