"""run_server: load the engine, build the app and serve it with uvicorn until SIGTERM/SIGINT.

uvicorn re-raises the signal that stopped it once it has shut down; SIGTERM is pointed at a
no-op first so that a graceful shutdown exits with status 0.
"""

from __future__ import annotations

import argparse
import logging
import signal

from pagedllm.engine_args import EngineArgs
from pagedllm.entrypoints.openai.server_config import server_config_from_args

logger = logging.getLogger("pagedllm.server")


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
        timeout_graceful_shutdown=max(0.0, args.shutdown_timeout) or None)
    server = uvicorn.Server(uv_config)
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0 if server.started else 1


def _stopped(signum: int, frame: object) -> None:
    logger.info("stopped by signal %d", signum)
