"""Prompt forms accepted by the engine and LLM.generate, and their parsing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

from pagedllm.tokenizer import Tokenizer

PromptType = Union[str, Sequence[int], dict[str, Any]]
_PROMPT_KEYS = {"prompt", "prompt_token_ids"}
_MAX_TOKEN_ID = 2**31 - 1


def is_token_ids(value: Any) -> bool:
    """True for a non-empty list or tuple of ints."""
    return (isinstance(value, (list, tuple)) and len(value) > 0
            and all(_is_int(t) for t in value))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_prompt(prompt: PromptType, tokenizer: Tokenizer) -> tuple[str | None, list[int]]:
    """``(prompt text or None, prompt token ids)`` of one prompt.

    A string is encoded with the tokenizer's special tokens; a list of ints or a
    ``{"prompt_token_ids": [...]}`` dict is used as is; ``{"prompt": str}`` is a string.
    Raises ValueError (TypeError for a value of the wrong type).
    """
    if isinstance(prompt, str):
        return prompt, tokenizer.encode(prompt)
    if isinstance(prompt, dict):
        unknown = set(prompt) - _PROMPT_KEYS
        if unknown:
            raise ValueError(f"unsupported prompt keys {sorted(unknown)}: pagedllm takes "
                             "'prompt' or 'prompt_token_ids'")
        if "prompt_token_ids" in prompt:
            text = prompt.get("prompt")
            return text, _checked_ids(prompt["prompt_token_ids"])
        if "prompt" in prompt:
            if not isinstance(prompt["prompt"], str):
                raise TypeError(f"'prompt' must be a str, got {type(prompt['prompt']).__name__}")
            return prompt["prompt"], tokenizer.encode(prompt["prompt"])
        raise ValueError("a prompt dict needs 'prompt' or 'prompt_token_ids'")
    if isinstance(prompt, (list, tuple)):
        return None, _checked_ids(prompt)
    raise TypeError(f"a prompt is a str, a list of token ids or a dict, "
                    f"got {type(prompt).__name__}")


def _checked_ids(ids: Any) -> list[int]:
    if not isinstance(ids, (list, tuple)):
        raise TypeError(f"prompt_token_ids must be a list of ints, got {type(ids).__name__}")
    checked = []
    for token_id in ids:
        if not _is_int(token_id) or not 0 <= token_id <= _MAX_TOKEN_ID:
            raise ValueError(f"prompt token id {token_id!r} is not a valid token id")
        checked.append(int(token_id))
    return checked


def as_prompt_list(prompts: PromptType | Sequence[PromptType]) -> list[PromptType]:
    """One prompt (a string, a dict or a list of token ids) or a list of prompts, as a list."""
    if isinstance(prompts, (str, dict)) or is_token_ids(prompts):
        return [prompts]
    if isinstance(prompts, (list, tuple)):
        return list(prompts)
    raise TypeError(f"prompts must be a str, a dict, a list of token ids or a list of those, "
                    f"got {type(prompts).__name__}")
