"""Validation of /v1/completions and /v1/chat/completions bodies into typed requests.

Unknown fields are ignored (clients send many); known fields with a wrong type or value are a
400 naming the field; features we do not implement are a 400 saying so, never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from pagedllm.entrypoints.openai.errors import bad_request
from pagedllm.entrypoints.openai.fields import MAX_INT, Fields
from pagedllm.sampling_params import SamplingParams

MAX_LOGPROBS = 20
MAX_STOP_STRINGS = 64
MAX_STOP_STRING_CHARS = 1024
MAX_PROMPTS = 4096
MAX_MESSAGES = 4096
_INT32_MAX = 2**31 - 1
_CHAT_ROLES = ("system", "developer", "user", "assistant", "tool")
_MESSAGE_KEYS = ("name", "tool_calls", "tool_call_id")
_RESERVED_TEMPLATE_KWARGS = {"messages", "add_generation_prompt", "chat_template", "tokenize",
                             "continue_final_message", "tools", "documents"}

Prompt = Union[str, list[int]]


@dataclass
class Limits:
    """Facts about the served model that bound request values."""

    vocab_size: int
    max_model_len: int
    max_n: int


@dataclass
class CommonRequest:
    model: str | None
    stream: bool
    include_usage: bool
    max_tokens: int | None
    params: SamplingParams


@dataclass
class CompletionRequest(CommonRequest):
    prompts: list[Prompt] = field(default_factory=list)
    echo: bool = False
    logprobs: int | None = None
    add_special_tokens: bool = True


@dataclass
class ChatRequest(CommonRequest):
    messages: list[dict[str, Any]] = field(default_factory=list)
    logprobs: bool = False
    top_logprobs: int = 0
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    add_special_tokens: bool = False
    tools: list[Any] | None = None
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)


def parse_completion_request(body: Any, limits: Limits,
                             defaults: SamplingParams) -> CompletionRequest:
    f = Fields(body)
    _reject_unsupported(f)
    if f.has("suffix"):
        raise bad_request("suffix is not supported", "suffix")
    logprobs = f.integer("logprobs", None, 0, MAX_LOGPROBS)
    echo = f.boolean("echo")
    common = _common(f, limits, defaults, logprobs=logprobs,
                     prompt_logprobs=logprobs if echo else None, default_max_tokens=16)
    return CompletionRequest(
        **common, prompts=_prompts(f.raw("prompt"), limits), echo=echo, logprobs=logprobs,
        add_special_tokens=f.boolean("add_special_tokens", True))


def parse_chat_request(body: Any, limits: Limits, defaults: SamplingParams) -> ChatRequest:
    f = Fields(body)
    _reject_unsupported(f)
    if f.has("chat_template"):
        raise bad_request("a per-request chat_template is not supported; start the server "
                          "with --chat-template FILE", "chat_template")
    logprobs = f.boolean("logprobs")
    top_logprobs = f.integer("top_logprobs", None, 0, MAX_LOGPROBS)
    if top_logprobs is not None and not logprobs:
        raise bad_request("top_logprobs needs logprobs=true", "top_logprobs")
    common = _common(f, limits, defaults, logprobs=(top_logprobs or 0) if logprobs else None,
                     prompt_logprobs=None, default_max_tokens=None,
                     max_tokens_names=("max_completion_tokens", "max_tokens"))
    add_generation_prompt = f.boolean("add_generation_prompt", True)
    continue_final_message = f.boolean("continue_final_message")
    if add_generation_prompt and continue_final_message and f.has("add_generation_prompt"):
        raise bad_request("continue_final_message and add_generation_prompt cannot both be "
                          "true", "continue_final_message")
    tools = f.raw("tools")
    if tools is not None and not isinstance(tools, list):
        raise bad_request("tools must be a list", "tools")
    kwargs = f.object("chat_template_kwargs")
    if kwargs is not None and _RESERVED_TEMPLATE_KWARGS & set(kwargs.data):
        raise bad_request("chat_template_kwargs may not set "
                          f"{sorted(_RESERVED_TEMPLATE_KWARGS & set(kwargs.data))}",
                          "chat_template_kwargs")
    return ChatRequest(
        **common, messages=parse_messages(f.raw("messages")), logprobs=logprobs,
        top_logprobs=top_logprobs or 0,
        add_generation_prompt=add_generation_prompt and not continue_final_message,
        continue_final_message=continue_final_message,
        add_special_tokens=f.boolean("add_special_tokens", False), tools=tools or None,
        chat_template_kwargs=dict(kwargs.data) if kwargs is not None else {})


def _reject_unsupported(f: Fields) -> None:
    bias = f.raw("logit_bias")
    if bias not in (None, {}):
        raise bad_request("logit_bias is not supported", "logit_bias")
    response_format = f.object("response_format")
    if response_format is not None and response_format.raw("type") not in (None, "text"):
        raise bad_request("only response_format {\"type\": \"text\"} is supported",
                          "response_format")


def _common(f: Fields, limits: Limits, defaults: SamplingParams, *, logprobs: int | None,
            prompt_logprobs: int | None, default_max_tokens: int | None,
            max_tokens_names: tuple[str, ...] = ("max_tokens",)) -> dict[str, Any]:
    model = f.string("model")
    stream = f.boolean("stream")
    options = f.object("stream_options")
    include_usage = bool(options and options.boolean("include_usage")) and stream
    given = [f.integer(name, None, 0, MAX_INT) for name in max_tokens_names]
    max_tokens = next((v for v in given if v is not None), default_max_tokens)
    stop = f.str_list("stop", MAX_STOP_STRINGS)
    for text in stop:
        if not text or len(text) > MAX_STOP_STRING_CHARS:
            raise bad_request(f"each stop string must have 1 to {MAX_STOP_STRING_CHARS} "
                              "characters", "stop")
    overrides: dict[str, Any] = {
        "n": f.integer("n", 1, 1, limits.max_n),
        "temperature": f.number("temperature", defaults.temperature, 0.0),
        "top_p": f.number("top_p", defaults.top_p, 0.0, 1.0),
        "top_k": f.integer("top_k", defaults.top_k, -1, _INT32_MAX),
        "min_p": f.number("min_p", defaults.min_p, 0.0, 1.0),
        "presence_penalty": f.number("presence_penalty", 0.0, -2.0, 2.0),
        "frequency_penalty": f.number("frequency_penalty", 0.0, -2.0, 2.0),
        "repetition_penalty": f.number("repetition_penalty", defaults.repetition_penalty,
                                       0.0, 1e6),
        "seed": f.integer("seed", None, -2**63, 2**64 - 1),
        "stop": stop,
        "stop_token_ids": f.int_list("stop_token_ids", 0, limits.vocab_size - 1, 1024),
        "ignore_eos": f.boolean("ignore_eos"),
        "min_tokens": f.integer("min_tokens", 0, 0, MAX_INT),
        "include_stop_str_in_output": f.boolean("include_stop_str_in_output"),
        "skip_special_tokens": f.boolean("skip_special_tokens", True),
        "spaces_between_special_tokens": f.boolean("spaces_between_special_tokens", True),
        "logprobs": logprobs,
        "prompt_logprobs": prompt_logprobs,
        "max_tokens": None,
    }
    best_of = f.integer("best_of", None, 1, limits.max_n)
    if best_of is not None:
        overrides["best_of"] = best_of
    if overrides["seed"] is not None and overrides["seed"] < 0:
        overrides["seed"] %= 2**64
    try:
        params = defaults.clone(**overrides)
    except ValueError as exc:
        raise bad_request(str(exc)) from exc
    return {"model": model, "stream": stream, "include_usage": include_usage,
            "max_tokens": max_tokens, "params": params}


def _prompts(value: Any, limits: Limits) -> list[Prompt]:
    if value is None:
        raise bad_request("prompt is required", "prompt")
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise bad_request("prompt must be a string, a list of strings, a list of token ids "
                          "or a list of token-id lists (non-empty)", "prompt")
    if len(value) > MAX_PROMPTS:
        raise bad_request(f"at most {MAX_PROMPTS} prompts per request", "prompt")
    if all(isinstance(p, str) for p in value):
        return list(value)
    if all(_is_int(t) for t in value):
        return [_token_ids(value, limits)]
    if all(isinstance(p, list) for p in value):
        return [_token_ids(p, limits) for p in value]
    raise bad_request("prompt must be a string, a list of strings, a list of token ids or a "
                      "list of token-id lists", "prompt")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _token_ids(value: list[Any], limits: Limits) -> list[int]:
    if not value:
        raise bad_request("a token-id prompt must not be empty", "prompt")
    for token_id in value:
        if not _is_int(token_id) or not 0 <= token_id < limits.vocab_size:
            raise bad_request(f"prompt token id {token_id!r} is not in the vocabulary "
                              f"(0..{limits.vocab_size - 1})", "prompt")
    return list(value)


def parse_messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise bad_request("messages must be a non-empty list", "messages")
    if len(value) > MAX_MESSAGES:
        raise bad_request(f"at most {MAX_MESSAGES} messages per request", "messages")
    return [_message(m, i) for i, m in enumerate(value)]


def _message(value: Any, index: int) -> dict[str, Any]:
    where = f"messages[{index}]"
    f = Fields(value, where=where)
    role = f.raw("role")
    if role not in _CHAT_ROLES:
        raise bad_request(f"{where}.role must be one of {', '.join(_CHAT_ROLES)}; got "
                          f"{role!r}", "messages")
    content = f.raw("content")
    if isinstance(content, list):
        content = _content_parts(content, where)
    elif content is not None and not isinstance(content, str):
        raise bad_request(f"{where}.content must be a string or a list of text parts",
                          "messages")
    if content is None and role != "assistant":
        raise bad_request(f"{where}.content is required", "messages")
    message: dict[str, Any] = {"role": role, "content": content if content is not None else ""}
    for key in _MESSAGE_KEYS:
        if f.has(key):
            message[key] = f.raw(key)
    return message


def _content_parts(parts: list[Any], where: str) -> str:
    texts = []
    for part in parts:
        if not isinstance(part, dict) or part.get("type") != "text":
            raise bad_request(f"{where}.content: only text parts are supported", "messages")
        text = part.get("text")
        if not isinstance(text, str):
            raise bad_request(f"{where}.content: a text part needs a string 'text'",
                              "messages")
        texts.append(text)
    return "\n".join(texts)
