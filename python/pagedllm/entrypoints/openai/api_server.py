"""run_server: load the engine, build the app and serve it with uvicorn until SIGTERM/SIGINT.

On a stop signal the listening sockets close first, in-flight requests get
``--shutdown-timeout`` seconds to finish and are then aborted (their streams end with an
error event), and uvicorn finishes its own shutdown. uvicorn re-raises the signal that stopped
it once it is done; SIGTERM is pointed at a no-op first so that a graceful shutdown exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
from typing import Any

from pagedllm.engine_args import EngineArgs
from pagedllm.entrypoints.openai.async_engine import AsyncEngine
from pagedllm.entrypoints.openai.server_config import server_config_from_args

logger = logging.getLogger("pagedllm.server")
_BACKSTOP_S = 5.0


def run_server(args: argparse.Namespace) -> int:
    """Serves until stopped; 0 after a graceful shutdown, 1 when start-up failed."""
    import uvicorn

    from pagedllm.engine import LLMEngine
    from pagedllm.entrypoints.openai.app import build_app

    engine_args = EngineArgs.from_cli_args(args)
    config = server_config_from_args(args, engine_args.model)
    engine = LLMEngine.from_engine_args(engine_args)
    app = build_app(engine, config)
    uv_config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level=args.uvicorn_log_level,
        access_log=not args.disable_uvicorn_access_log, lifespan="on",
        timeout_graceful_shutdown=_BACKSTOP_S)
    server = _make_server(uvicorn, uv_config, app.state.serving.engine,
                          max(0.0, args.shutdown_timeout))
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0 if server.started else 1


def _make_server(uvicorn: Any, config: Any, engine: AsyncEngine, drain_s: float) -> Any:
    class GracefulServer(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            for listener in self.servers:
                listener.close()
            await engine.drain(drain_s)
            await super().shutdown(sockets)

    return GracefulServer(config)


def _stopped(signum: int, frame: object) -> None:
    logger.info("stopped by signal %d", signum)
