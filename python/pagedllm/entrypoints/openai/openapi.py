"""The OpenAPI 3.1 description of the server, served at /openapi.json (hand-written; it
describes what protocol.py accepts)."""

from __future__ import annotations

from typing import Any

_NUMBER = {"type": "number"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_STR = {"type": "string"}
_TOKENS = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}
_STOP = {"anyOf": [_STR, {"type": "array", "items": _STR}, {"type": "null"}]}

_SAMPLING: dict[str, Any] = {
    "model": {"type": ["string", "null"], "description": "a served model name (default: the "
              "first one)"},
    "max_tokens": {"type": ["integer", "null"], "minimum": 0,
                   "description": "clamped to what fits the model length"},
    "temperature": {**_NUMBER, "minimum": 0},
    "top_p": {**_NUMBER, "exclusiveMinimum": 0, "maximum": 1},
    "top_k": {**_INT, "minimum": -1},
    "min_p": {**_NUMBER, "minimum": 0, "maximum": 1},
    "n": {**_INT, "minimum": 1},
    "presence_penalty": {**_NUMBER, "minimum": -2, "maximum": 2},
    "frequency_penalty": {**_NUMBER, "minimum": -2, "maximum": 2},
    "repetition_penalty": {**_NUMBER, "exclusiveMinimum": 0},
    "seed": {"type": ["integer", "null"]},
    "stop": _STOP,
    "stop_token_ids": {"type": "array", "items": {**_INT, "minimum": 0}},
    "ignore_eos": _BOOL,
    "min_tokens": {**_INT, "minimum": 0},
    "include_stop_str_in_output": _BOOL,
    "skip_special_tokens": _BOOL,
    "stream": _BOOL,
    "stream_options": {"type": ["object", "null"],
                       "properties": {"include_usage": _BOOL}},
    "user": _STR,
}

_COMPLETION_REQUEST = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        **_SAMPLING,
        "prompt": {"anyOf": [_STR, {"type": "array", "items": _STR, "minItems": 1}, _TOKENS,
                             {"type": "array", "items": _TOKENS, "minItems": 1}]},
        "echo": _BOOL,
        "logprobs": {"type": ["integer", "null"], "minimum": 0, "maximum": 20},
        "add_special_tokens": _BOOL,
    },
}

_MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {"anyOf": [_STR, {"type": "null"}, {"type": "array", "items": {
            "type": "object", "required": ["type", "text"],
            "properties": {"type": {"const": "text"}, "text": _STR}}}]},
        "name": _STR,
    },
}

_CHAT_REQUEST = {
    "type": "object",
    "required": ["messages"],
    "properties": {
        **_SAMPLING,
        "messages": {"type": "array", "items": _MESSAGE, "minItems": 1},
        "max_completion_tokens": {"type": ["integer", "null"], "minimum": 0},
        "logprobs": _BOOL,
        "top_logprobs": {"type": ["integer", "null"], "minimum": 0, "maximum": 20},
        "add_generation_prompt": _BOOL,
        "continue_final_message": _BOOL,
        "chat_template_kwargs": {"type": "object"},
    },
}

_TOKENIZE_REQUEST = {
    "type": "object",
    "properties": {"model": {"type": ["string", "null"]}, "prompt": _STR,
                   "messages": {"type": "array", "items": _MESSAGE, "minItems": 1},
                   "add_special_tokens": _BOOL},
}

_DETOKENIZE_REQUEST = {
    "type": "object",
    "required": ["tokens"],
    "properties": {"model": {"type": ["string", "null"]},
                   "tokens": {"type": "array", "items": {**_INT, "minimum": 0}}},
}

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["message", "type"], "properties": {
        "message": _STR, "type": _STR, "param": {"type": ["string", "null"]},
        "code": {"type": ["string", "integer", "null"]}}}},
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": "error", **_json(_ERROR)} for s in statuses}


def _post(summary: str, request: dict[str, Any], response: dict[str, Any],
          streaming: bool = False) -> dict[str, Any]:
    content = _json(response)["content"]
    if streaming:
        content["text/event-stream"] = {"schema": _STR}
    return {"post": {
        "summary": summary,
        "requestBody": {"required": True, **_json(request)},
        "responses": {"200": {"description": "success", "content": content},
                      **_errors(400, 401, 404, 413, 503)},
    }}


def _get(summary: str, response: dict[str, Any], media: str = "application/json"
         ) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {
        "200": {"description": "success", "content": {media: {"schema": response}}},
        **_errors(401)}}}


def openapi_schema(version: str) -> dict[str, Any]:
    obj = {"type": "object"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "pagedllm OpenAI-compatible API", "version": version},
        "paths": {
            "/v1/completions": _post("Text completion", _COMPLETION_REQUEST, obj, True),
            "/v1/chat/completions": _post("Chat completion", _CHAT_REQUEST, obj, True),
            "/tokenize": _post("Tokenize a prompt or conversation", _TOKENIZE_REQUEST, obj),
            "/detokenize": _post("Detokenize token ids", _DETOKENIZE_REQUEST, obj),
            "/v1/models": _get("Served models", obj),
            "/health": {"get": {"summary": "200 while the engine runs", "responses": {
                "200": {"description": "healthy"}, **_errors(503)}}},
            "/version": _get("Server version", obj),
            "/metrics": _get("Prometheus metrics", _STR, "text/plain"),
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
