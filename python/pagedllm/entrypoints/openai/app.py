"""build_app: the Starlette application of the OpenAI-compatible server.

The engine thread starts in the app's lifespan and stops (aborting what still runs) when the
server shuts down. Every error leaves as an OpenAI-shaped JSON body; an unexpected exception
is logged and answered with a 500 that names no internals.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from pagedllm import __version__
from pagedllm.engine import LLMEngine
from pagedllm.entrypoints.openai.async_engine import AsyncEngine
from pagedllm.entrypoints.openai.errors import (APIError, bad_request, error_body,
                                                error_response)
from pagedllm.entrypoints.openai.fields import Fields
from pagedllm.entrypoints.openai.metrics import CONTENT_TYPE
from pagedllm.entrypoints.openai.openapi import openapi_schema
from pagedllm.entrypoints.openai.protocol import parse_messages
from pagedllm.entrypoints.openai.server_config import ServerConfig
from pagedllm.entrypoints.openai.serving import ServingContext
from pagedllm.entrypoints.openai.serving_chat import create_chat_completion
from pagedllm.entrypoints.openai.serving_completions import create_completion

logger = logging.getLogger("pagedllm.server")
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
_PUBLIC_PATHS = ("/health", "/", "/favicon.ico")
Endpoint = Callable[[ServingContext, Request], Awaitable[Response]]


class _APIKeyMiddleware:
    """401 unless ``Authorization: Bearer <key>``, except for /health and the chat page."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_public(scope["path"]) or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        response = error_response(401, error_body(401, "invalid or missing API key: send "
                                                       "'Authorization: Bearer <key>'"),
                                  headers={"www-authenticate": "Bearer"})
        await response(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                return hmac.compare_digest(value, self.expected)
        return False


def _is_public(path: str) -> bool:
    return path in _PUBLIC_PATHS or path.startswith("/static/")


def _endpoint(ctx: ServingContext, handler: Endpoint) -> Callable[[Request], Awaitable[Any]]:
    @functools.wraps(handler)
    async def run(request: Request) -> Any:
        try:
            return await handler(ctx, request)
        except APIError as exc:
            return exc.response()
        except Exception:
            logger.exception("unexpected error in %s %s", request.method, request.url.path)
            return error_response(500, error_body(500, "internal server error"))

    return run


async def _models(ctx: ServingContext, request: Request) -> Response:
    created = int(ctx.started)
    data = [{"id": name, "object": "model", "created": created, "owned_by": "pagedllm",
             "root": ctx.engine.engine.args.model, "parent": None,
             "max_model_len": ctx.limits.max_model_len} for name in ctx.config.served_model_names]
    return JSONResponse({"object": "list", "data": data})


async def _health(ctx: ServingContext, request: Request) -> Response:
    if not ctx.engine.is_alive:
        raise APIError(503, "the engine is not running", code="engine_unavailable")
    return Response(status_code=200)


async def _version(ctx: ServingContext, request: Request) -> Response:
    return JSONResponse({"version": __version__})


async def _metrics(ctx: ServingContext, request: Request) -> Response:
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)


async def _openapi(ctx: ServingContext, request: Request) -> Response:
    return JSONResponse(openapi_schema(__version__))


async def _tokenize(ctx: ServingContext, request: Request) -> Response:
    f = Fields(await ctx.read_json(request))
    ctx.check_model(f.string("model"))
    if f.has("messages"):
        text = await ctx.render_chat(
            parse_messages(f.raw("messages")),
            add_generation_prompt=f.boolean("add_generation_prompt", True))
        tokens = await ctx.encode(text, f.boolean("add_special_tokens", False))
    else:
        prompt = f.string("prompt")
        if prompt is None:
            raise bad_request("give a prompt (string) or messages", "prompt")
        tokens = await ctx.encode(prompt, f.boolean("add_special_tokens", True))
    return JSONResponse({"count": len(tokens), "max_model_len": ctx.limits.max_model_len,
                         "tokens": tokens})


async def _detokenize(ctx: ServingContext, request: Request) -> Response:
    f = Fields(await ctx.read_json(request))
    ctx.check_model(f.string("model"))
    if not f.has("tokens"):
        raise bad_request("tokens is required", "tokens")
    tokens = f.int_list("tokens", 0, ctx.limits.vocab_size - 1, 10 * ctx.limits.max_model_len)
    return JSONResponse({"prompt": ctx.tokenizer.decode(tokens, skip_special_tokens=False)})


async def _chat_page(ctx: ServingContext, request: Request) -> Response:
    return FileResponse(os.path.join(STATIC_DIR, "index.html"), media_type="text/html")


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = exc.detail if isinstance(exc, HTTPException) else "internal server error"
    return error_response(status, error_body(status, str(message)),
                          headers=getattr(exc, "headers", None))


def build_app(engine: LLMEngine | AsyncEngine, config: ServerConfig | None = None) -> Starlette:
    """The ASGI app serving ``engine`` (an LLMEngine is wrapped in an AsyncEngine)."""
    config = config or ServerConfig()
    if isinstance(engine, LLMEngine):
        engine = AsyncEngine(engine, config.max_waiting_requests)
    ctx = ServingContext(engine, config)

    def route(path: str, handler: Endpoint, methods: list[str]) -> Route:
        return Route(path, _endpoint(ctx, handler), methods=methods)

    routes = [
        route("/v1/completions", create_completion, ["POST"]),
        route("/v1/chat/completions", create_chat_completion, ["POST"]),
        route("/v1/models", _models, ["GET"]),
        route("/health", _health, ["GET"]),
        route("/version", _version, ["GET"]),
        route("/metrics", _metrics, ["GET"]),
        route("/openapi.json", _openapi, ["GET"]),
        route("/tokenize", _tokenize, ["POST"]),
        route("/detokenize", _detokenize, ["POST"]),
    ]
    if config.enable_chat_page:
        routes.append(route("/", _chat_page, ["GET"]))
        routes.append(Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            await engine.shutdown()

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error, Exception: _http_error})
    app.state.serving = ctx
    if config.api_key:
        app.add_middleware(_APIKeyMiddleware, api_key=config.api_key)
    return app
