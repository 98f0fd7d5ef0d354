"""Rendering Hugging Face chat templates (Jinja2, sandboxed, with HF's helpers)."""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

Message = dict[str, Any]


class ChatTemplateError(ValueError):
    """A chat template failed to compile or render (including raise_exception)."""


def _raise_exception(message: str) -> None:
    raise ChatTemplateError(message)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent,
                      separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@functools.lru_cache(maxsize=16)
def compile_template(source: str) -> jinja2.Template:
    """The compiled template; ChatTemplateError on a syntax error."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ChatTemplateError(f"invalid chat template: {exc}") from exc


def normalize_messages(messages: list[Message]) -> list[Message]:
    """Messages whose text-only content lists (OpenAI parts) are joined into strings."""
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ValueError("a conversation must be a list of {'role': ..., 'content': ...} dicts")
    normalized = []
    for message in messages:
        if "role" not in message:
            raise ValueError(f"chat message without a 'role': {message!r}")
        content = message.get("content")
        if isinstance(content, list) and all(
                isinstance(p, dict) and p.get("type") == "text" for p in content):
            message = {**message, "content": "\n".join(str(p.get("text", "")) for p in content)}
        normalized.append(message)
    return normalized


def render_chat_template(source: str, messages: list[Message], *,
                         add_generation_prompt: bool, special_tokens: dict[str, str],
                         **variables: Any) -> str:
    """Renders ``source`` for ``messages``; ChatTemplateError when the template fails."""
    template = compile_template(source)
    context = {k: v for k, v in special_tokens.items() if v is not None}
    context.update({k: v for k, v in variables.items() if v is not None})
    try:
        return template.render(messages=normalize_messages(messages),
                               add_generation_prompt=add_generation_prompt, **context)
    except ChatTemplateError:
        raise
    except jinja2.TemplateError as exc:
        raise ChatTemplateError(f"chat template failed: {exc}") from exc
