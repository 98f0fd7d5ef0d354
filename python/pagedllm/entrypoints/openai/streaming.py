"""Server-Sent Events and client-disconnect handling.

A request's engine work must stop the moment its client leaves: ``SSEResponse`` and
``until_disconnect`` both watch the ASGI ``receive`` channel for ``http.disconnect`` while the
response is produced, and call the request's abort at once when it comes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from starlette.types import Receive, Scope, Send

logger = logging.getLogger("pagedllm.server")
T = TypeVar("T")

DONE = "[DONE]"


class ClientDisconnected(Exception):
    """The client closed the connection before the response was ready."""


def sse_event(data: Any) -> bytes:
    """One SSE ``data:`` event (a JSON value, or the literal ``[DONE]``)."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False,
                                                         separators=(",", ":"))
    return f"data: {text}\n\n".encode()


async def wait_for_disconnect(receive: Receive) -> None:
    """Returns when the client disconnects (call after the body has been read)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def until_disconnect(receive: Receive, work: Awaitable[T],
                           on_disconnect: Callable[[], None]) -> T:
    """Awaits ``work``; if the client disconnects first, cancels it, calls
    ``on_disconnect`` and raises ClientDisconnected."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(wait_for_disconnect(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
        watcher.cancel()
    if task.done() and not task.cancelled():
        return task.result()
    on_disconnect()
    await asyncio.gather(task, return_exceptions=True)
    raise ClientDisconnected()


class SSEResponse:
    """Streams ``events`` (JSON values, or ``"[DONE]"``) as ``text/event-stream``.

    ``on_close`` runs exactly once when the response ends for any reason: all events sent,
    client disconnected, a send failed, or the task was cancelled (server shutdown).
    """

    def __init__(self, events: AsyncIterator[Any], on_close: Callable[[], None]) -> None:
        self.events = events
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        producer = asyncio.ensure_future(self._produce(send))
        watcher = asyncio.ensure_future(wait_for_disconnect(receive))
        try:
            await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if producer.done() and not producer.cancelled():
                error = producer.exception()
                if error is not None and not isinstance(error, OSError):
                    logger.error("streaming response failed", exc_info=error)
        finally:
            producer.cancel()
            watcher.cancel()
            self.on_close()
            await asyncio.gather(producer, watcher, return_exceptions=True)
            aclose = getattr(self.events, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    logger.exception("closing the event stream failed")

    async def _produce(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]})
        async for event in self.events:
            await send({"type": "http.response.body", "body": sse_event(event),
                        "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
