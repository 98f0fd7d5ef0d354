"""AsyncEngine: one LLMEngine driven by a background thread, fed and drained from asyncio.

Invariant: only the engine thread touches the LLMEngine (add, abort, step); only the event
loop touches the per-request streams. The loop hands work to the thread through a locked
command list and a condition variable; the thread hands each step's outputs back with one
``loop.call_soon_threadsafe``. The thread sleeps while there is no command and no unfinished
request. ``step()`` releases the GIL while the C++ engine works, so the event loop keeps
serving HTTP during a step.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from pagedllm.engine import LLMEngine
from pagedllm.outputs import RequestOutput
from pagedllm.sampling_params import SamplingParams

logger = logging.getLogger("pagedllm.server")


class EngineDeadError(RuntimeError):
    """The engine thread stopped after an internal error; the server cannot generate."""


class QueueFullError(RuntimeError):
    """More requests are waiting than ``max_waiting_requests`` allows."""


@dataclasses.dataclass
class EngineSnapshot:
    """Engine counters as of the latest step (read by /metrics and admission control)."""

    stats: dict[str, int] = dataclasses.field(default_factory=dict)
    num_unfinished: int = 0


class RequestStream:
    """The output deltas of one request, in order; iterate it with ``async for``.

    Yields DELTA RequestOutputs until the finished one. ``scheduled_time`` is the
    ``time.time()`` at which the engine first scheduled the request (None before).
    ``num_outputs`` is the completions it delivers (``n``; ``best_of`` may generate more).
    """

    def __init__(self, request_id: str, arrival_time: float, num_outputs: int) -> None:
        self.request_id = request_id
        self.arrival_time = arrival_time
        self.num_outputs = num_outputs
        self.scheduled_time: float | None = None
        self.num_generation_tokens = 0
        self.finished = False
        self._queue: asyncio.Queue[RequestOutput | BaseException] = asyncio.Queue()

    def put(self, item: RequestOutput | BaseException) -> None:
        self._queue.put_nowait(item)

    async def __aiter__(self) -> AsyncIterator[RequestOutput]:
        while not self.finished:
            item = await self._queue.get()
            if isinstance(item, BaseException):
                self.finished = True
                raise item
            if item.finished:
                self.finished = True
            yield item


class _Add:
    __slots__ = ("request_id", "prompt", "params", "arrival_time", "future", "num_samples")

    def __init__(self, request_id: str, prompt: Any, params: SamplingParams,
                 arrival_time: float, future: asyncio.Future[None]) -> None:
        self.request_id = request_id
        self.prompt = prompt
        self.params = params
        self.arrival_time = arrival_time
        self.future = future
        self.num_samples = params.num_samples  # core requests it becomes (best_of or n)


class AsyncEngine:
    """Serves ``engine`` to coroutines of one event loop.

    ``max_waiting_requests`` bounds the samples (core requests) queued but not yet
    scheduled; ``generate`` raises QueueFullError beyond it. Call ``start()`` from the loop
    and ``shutdown()`` before the loop ends. ``on_request_finished(stream, final_output)`` is
    called on the loop for each request that finishes, with None for an aborted one.
    """

    on_request_finished: Callable[[RequestStream, RequestOutput | None], None] | None = None

    def __init__(self, engine: LLMEngine, max_waiting_requests: int | None = None) -> None:
        self.engine = engine
        self.max_waiting_requests = max_waiting_requests
        self.snapshot = EngineSnapshot(stats=engine.get_stats())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._commands: list[_Add | str] = []
        self._num_pending_samples = 0
        self._stopping = False
        self._draining = False
        self._dead: BaseException | None = None
        self._streams: dict[str, RequestStream] = {}
        self._unscheduled: collections.OrderedDict[str, int] = collections.OrderedDict()

    @property
    def tokenizer(self) -> Any:
        return self.engine.tokenizer

    @property
    def max_model_len(self) -> int:
        return self.engine.max_model_len

    @property
    def vocab_size(self) -> int:
        return int(self.engine.model_info.vocab_size)

    @property
    def is_alive(self) -> bool:
        return self._dead is None and self._thread is not None and self._thread.is_alive()

    @property
    def num_waiting_samples(self) -> int:
        """Samples queued: not yet seen by the engine's latest stats, or waiting in it."""
        with self._cond:
            return self._num_pending_samples + self.snapshot.stats.get("num_waiting", 0)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="pagedllm-engine", daemon=True)
        self._thread.start()

    def check_capacity(self, num_samples: int) -> None:
        """Raises QueueFullError when ``num_samples`` more would overflow the queue and
        EngineDeadError when the engine has stopped."""
        if self._draining or self._stopping:
            raise EngineDeadError("the server is shutting down")
        if self._dead is not None:
            raise EngineDeadError("the engine is not running")
        limit = self.max_waiting_requests
        if limit is not None and self.num_waiting_samples + num_samples > limit:
            raise QueueFullError(
                f"the server is at capacity: {self.num_waiting_samples} requests are waiting "
                f"(--max-waiting-requests {limit}); retry later")

    async def generate(self, requests: Sequence[tuple[str, Any, SamplingParams]],
                       arrival_time: float | None = None) -> list[RequestStream]:
        """Queues ``(request_id, prompt, params)`` requests together (they join the same
        engine step); returns their streams once the engine accepted all of them.

        ``params.output_kind`` must be DELTA. All or none: raises QueueFullError,
        EngineDeadError, or the engine's ValueError/TypeError for a request it refuses, and
        then aborts the others.
        """
        self.check_capacity(sum(params.num_samples for _, _, params in requests))
        arrival = arrival_time if arrival_time is not None else time.time()
        loop = asyncio.get_running_loop()
        streams, commands = [], []
        for request_id, prompt, params in requests:
            stream = RequestStream(request_id, arrival, params.n)
            commands.append(_Add(request_id, prompt, params, arrival, loop.create_future()))
            self._streams[request_id] = stream
            streams.append(stream)
        with self._cond:
            self._commands.extend(commands)
            self._num_pending_samples += sum(c.num_samples for c in commands)
            self._cond.notify()
        try:
            results = await asyncio.gather(*(c.future for c in commands),
                                           return_exceptions=True)
        except BaseException:
            for command in commands:
                self.abort(command.request_id)
            raise
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            for command, result in zip(commands, results):
                self._streams.pop(command.request_id, None)
                if not isinstance(result, BaseException):
                    self.abort(command.request_id)
            raise errors[0]
        return streams

    def abort(self, request_id: str) -> None:
        """Stops a request at once (its KV blocks are freed by the next engine iteration);
        its stream gets no further output. No-op for an unknown id."""
        stream = self._streams.pop(request_id, None)
        if stream is not None and self.on_request_finished is not None:
            self.on_request_finished(stream, None)
        with self._cond:
            self._commands.append(request_id)
            self._cond.notify()

    async def drain(self, timeout: float) -> None:
        """Refuses new requests, gives the running ones ``timeout`` seconds to finish, then
        aborts the rest (their streams end with EngineDeadError)."""
        self._draining = True
        deadline = time.monotonic() + timeout
        while self._streams and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self._abort_all("the server is shutting down")

    def _abort_all(self, reason: str) -> None:
        for request_id, stream in list(self._streams.items()):
            self.abort(request_id)
            stream.put(EngineDeadError(reason))

    async def shutdown(self) -> None:
        """Aborts every request, stops the engine thread and waits for it."""
        self._abort_all("the server is shutting down")
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:
            logger.exception("the engine loop failed; the server can no longer generate")
            self._dead = exc
            with self._cond:
                commands, self._commands = self._commands, []
            error = EngineDeadError(f"the engine failed: {exc}")
            for command in commands:
                if isinstance(command, _Add):
                    self._post(_set_future, command.future, error)
            self._post(self._fail_all, exc)

    def _serve(self) -> None:
        engine = self.engine
        while True:
            with self._cond:
                while (not self._commands and not self._stopping
                       and not engine.has_unfinished_requests()):
                    self._cond.wait()
                commands, self._commands = self._commands, []
                stopping = self._stopping
            num_added = sum(self._apply(command) for command in commands)
            if stopping:
                return
            outputs: list[RequestOutput] = []
            step_time = time.time()
            if engine.has_unfinished_requests():
                outputs = engine.step()
            stats = engine.get_stats()
            scheduled = self._newly_scheduled(stats["num_waiting"])
            snapshot = EngineSnapshot(stats=stats,
                                      num_unfinished=engine.get_num_unfinished_requests())
            with self._cond:
                self.snapshot = snapshot
                self._num_pending_samples -= num_added
            if outputs or scheduled:
                self._post(self._deliver, outputs, scheduled, step_time)

    def _apply(self, command: _Add | str) -> int:
        """Runs one command; returns the samples it took off the pending count."""
        engine = self.engine
        if isinstance(command, str):
            engine.abort_request(command)
            self._unscheduled.pop(command, None)
            return 0
        try:
            engine.add_request(command.request_id, command.prompt, command.params,
                               arrival_time=command.arrival_time)
        except Exception as exc:
            self._post(_set_future, command.future, exc)
        else:
            self._unscheduled[command.request_id] = command.num_samples
            self._post(_set_future, command.future, None)
        return command.num_samples

    def _newly_scheduled(self, num_waiting: int) -> list[str]:
        """Ids of the requests scheduled for the first time by the latest step, assuming FCFS:
        all but the last ``num_waiting`` queued samples left the waiting queue."""
        scheduled = []
        queued = sum(self._unscheduled.values())
        while self._unscheduled and queued > num_waiting:
            request_id, count = self._unscheduled.popitem(last=False)
            queued -= count
            scheduled.append(request_id)
        return scheduled

    def _post(self, callback: Any, *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass

    def _deliver(self, outputs: list[RequestOutput], scheduled: list[str],
                 step_time: float) -> None:
        for request_id in scheduled:
            stream = self._streams.get(request_id)
            if stream is not None and stream.scheduled_time is None:
                stream.scheduled_time = step_time
        for output in outputs:
            stream = self._streams.get(output.request_id)
            if stream is None:
                continue
            if stream.scheduled_time is None:
                stream.scheduled_time = step_time
            stream.num_generation_tokens += sum(len(o.token_ids) for o in output.outputs)
            if output.finished:
                del self._streams[output.request_id]
                if self.on_request_finished is not None:
                    self.on_request_finished(stream, output)
            stream.put(output)

    def _fail_all(self, exc: BaseException) -> None:
        error = EngineDeadError(f"the engine failed: {exc}")
        for stream in self._streams.values():
            stream.put(error)
        self._streams.clear()


def _set_future(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)
