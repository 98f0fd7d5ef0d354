"""ServerConfig: the HTTP-side options of ``pagedllm serve`` and their command-line flags."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from pagedllm.engine_args import parse_size

DEFAULT_MAX_WAITING_REQUESTS = 4096
DEFAULT_MAX_BODY_BYTES = 32 * 2**20


@dataclass
class ServerConfig:
    """What the app needs besides the engine. The first served name is the one reported."""

    served_model_names: list[str] = field(default_factory=lambda: ["demo"])
    api_key: str | None = None
    max_waiting_requests: int | None = DEFAULT_MAX_WAITING_REQUESTS
    max_request_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    chat_template: str | None = None
    enable_chat_page: bool = True

    @property
    def model_name(self) -> str:
        return self.served_model_names[0]


def add_server_args(parser: argparse.ArgumentParser) -> None:
    """Adds the HTTP flags of ``pagedllm serve`` (named like ``vllm serve``'s)."""
    group = parser.add_argument_group("server")
    group.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default: %(default)s, loopback only)")
    group.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    group.add_argument("--api-key", default=None,
                       help="require 'Authorization: Bearer KEY' on every endpoint but "
                            "/health and the chat page (default: $PAGEDLLM_API_KEY, else none)")
    group.add_argument("--served-model-name", nargs="+", metavar="NAME",
                       help="model name(s) clients use; the first is reported "
                            "(default: the model argument)")
    group.add_argument("--max-waiting-requests", type=int,
                       default=DEFAULT_MAX_WAITING_REQUESTS,
                       help="queued sequences before new requests get 503 "
                            "(default: %(default)s; 0: no limit)")
    group.add_argument("--max-request-body-bytes", type=parse_size,
                       default=DEFAULT_MAX_BODY_BYTES,
                       help="largest request body; larger ones get 413 (default: 32MiB)")
    group.add_argument("--chat-template", metavar="FILE",
                       help="Jinja chat template file (or template text) replacing the "
                            "tokenizer's")
    group.add_argument("--disable-chat-page", action="store_true",
                       help="do not serve the chat page at /")
    group.add_argument("--shutdown-timeout", type=float, default=10.0, metavar="SECONDS",
                       help="on SIGTERM, time in-flight requests get to finish before they "
                            "are aborted (default: %(default)s)")
    group.add_argument("--uvicorn-log-level", default="info",
                       choices=["critical", "error", "warning", "info", "debug", "trace"],
                       help="uvicorn log level (default: %(default)s)")
    group.add_argument("--disable-uvicorn-access-log", action="store_true",
                       help="do not log each HTTP request")


def server_config_from_args(args: argparse.Namespace, model: str) -> ServerConfig:
    """The ServerConfig of parsed ``serve`` flags (ValueError for bad values)."""
    if args.max_waiting_requests < 0:
        raise ValueError("--max-waiting-requests must be >= 0")
    if args.max_request_body_bytes < 1:
        raise ValueError("--max-request-body-bytes must be positive")
    return ServerConfig(
        served_model_names=list(args.served_model_name or [model]),
        api_key=args.api_key or os.environ.get("PAGEDLLM_API_KEY") or None,
        max_waiting_requests=args.max_waiting_requests or None,
        max_request_body_bytes=args.max_request_body_bytes,
        chat_template=load_chat_template(args.chat_template),
        enable_chat_page=not args.disable_chat_page)


def load_chat_template(value: str | None) -> str | None:
    """The template text of ``--chat-template``: a file's contents, or the value itself when
    it looks like a template. ValueError for a path that does not exist."""
    if value is None:
        return None
    if os.path.isfile(value):
        with open(value, encoding="utf-8") as f:
            return f.read()
    if "{{" in value or "{%" in value:
        return value
    raise ValueError(f"--chat-template: no such file: {value}")
