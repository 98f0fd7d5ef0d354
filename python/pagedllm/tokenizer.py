"""Tokenizer: a Hugging Face fast tokenizer (tokenizer.json) plus tokenizer_config.json."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from pagedllm.chat_template import ChatTemplateError, Message, render_chat_template

_SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token")


class Tokenizer:
    """Encodes, decodes and renders chat templates for one model directory.

    Raises FileNotFoundError when ``path`` has no tokenizer.json and ValueError when a
    tokenizer file is malformed.
    """

    def __init__(self, path: str) -> None:
        from tokenizers import Tokenizer as FastTokenizer

        self.path = os.path.abspath(path)
        tokenizer_file = os.path.join(self.path, "tokenizer.json")
        if not os.path.isfile(tokenizer_file):
            raise FileNotFoundError(_missing_tokenizer_message(self.path))
        try:
            self._tok = FastTokenizer.from_file(tokenizer_file)
        except Exception as exc:
            raise ValueError(f"cannot load {tokenizer_file}: {exc}") from exc
        config = _read_json(os.path.join(self.path, "tokenizer_config.json")) or {}
        self._special = {k: _token_content(config.get(k)) for k in _SPECIAL_TOKEN_KEYS}
        self.chat_template, self.named_chat_templates = _load_chat_templates(self.path, config)
        self.model_max_length = config.get("model_max_length")
        self._special_ids = {i for i, t in self._tok.get_added_tokens_decoder().items()
                             if t.special}
        self._fix_bos, self._fix_eos = self._special_token_fixes(config)
        self._token_text: dict[int, str] = {}

    def _special_token_fixes(self, config: dict[str, Any]) -> tuple[int, int]:
        """+1 to add, -1 to strip, 0 to keep what the post-processor does with BOS/EOS."""
        with_special = self._tok.encode("a", add_special_tokens=True).ids
        plain = self._tok.encode("a", add_special_tokens=False).ids
        fixes = []
        for key, token_id, at_start in (("add_bos_token", self.bos_token_id, True),
                                        ("add_eos_token", self.eos_token_id, False)):
            wanted = config.get(key)
            if wanted is None or token_id is None or len(with_special) < len(plain):
                fixes.append(0)
                continue
            edge = with_special[0] if at_start else with_special[-1]
            has = len(with_special) > len(plain) and edge == token_id
            fixes.append(0 if bool(wanted) == has else (1 if wanted else -1))
        return fixes[0], fixes[1]

    @property
    def bos_token(self) -> str | None:
        return self._special["bos_token"]

    @property
    def eos_token(self) -> str | None:
        return self._special["eos_token"]

    @property
    def pad_token(self) -> str | None:
        return self._special["pad_token"]

    @property
    def bos_token_id(self) -> int | None:
        return self.token_to_id(self.bos_token)

    @property
    def eos_token_id(self) -> int | None:
        return self.token_to_id(self.eos_token)

    @property
    def all_special_ids(self) -> list[int]:
        return sorted(self._special_ids)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    def token_to_id(self, token: str | None) -> int | None:
        return None if token is None else self._tok.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self._tok.id_to_token(token_id)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode() takes a str, got {type(text).__name__}")
        ids = self._tok.encode(text, add_special_tokens=add_special_tokens).ids
        if add_special_tokens:
            ids = self._apply_fixes(ids)
        return ids

    def _apply_fixes(self, ids: list[int]) -> list[int]:
        if self._fix_bos == 1 and (not ids or ids[0] != self.bos_token_id):
            ids = [self.bos_token_id, *ids]
        elif self._fix_bos == -1 and ids and ids[0] == self.bos_token_id:
            ids = ids[1:]
        if self._fix_eos == 1 and (not ids or ids[-1] != self.eos_token_id):
            ids = [*ids, self.eos_token_id]
        elif self._fix_eos == -1 and ids and ids[-1] == self.eos_token_id:
            ids = ids[:-1]
        return ids

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._tok.decode(list(token_ids), skip_special_tokens=skip_special_tokens)

    def decode_token(self, token_id: int) -> str:
        """The text of one token on its own (cached), special tokens included."""
        text = self._token_text.get(token_id)
        if text is None:
            text = self._tok.decode([token_id], skip_special_tokens=False)
            self._token_text[token_id] = text
        return text

    def apply_chat_template(self, messages: list[Message], add_generation_prompt: bool = True,
                            chat_template: str | None = None, *, tokenize: bool = False,
                            continue_final_message: bool = False,
                            tools: list[dict[str, Any]] | None = None,
                            documents: list[dict[str, Any]] | None = None,
                            **kwargs: Any) -> str | list[int]:
        """The conversation rendered with the model's (or the given) chat template.

        ``chat_template`` is a template string or the name of one of the model's named
        templates. Returns the text, or its token ids when ``tokenize`` (no special tokens
        are added: the template writes them). Raises ValueError when there is no template
        or it fails.
        """
        source = self._select_template(chat_template, tools)
        if continue_final_message and add_generation_prompt:
            raise ValueError("continue_final_message and add_generation_prompt are exclusive")
        text = render_chat_template(
            source, messages, add_generation_prompt=add_generation_prompt,
            special_tokens=self._special, tools=tools, documents=documents, **kwargs)
        if continue_final_message:
            text = _cut_after_final_message(text, messages)
        return self.encode(text, add_special_tokens=False) if tokenize else text

    def _select_template(self, chat_template: str | None, tools: Any) -> str:
        if chat_template is not None:
            return self.named_chat_templates.get(chat_template, chat_template)
        if tools and "tool_use" in self.named_chat_templates:
            return self.named_chat_templates["tool_use"]
        if self.chat_template is None:
            raise ValueError(
                f"the tokenizer in {self.path} has no chat template; pass chat_template=... "
                "(a Jinja template string) to use chat")
        return self.chat_template


def _missing_tokenizer_message(path: str) -> str:
    hint = ""
    if os.path.isfile(os.path.join(path, "tokenizer.model")):
        hint = (" It has a SentencePiece tokenizer.model only; convert it once with "
                "transformers (AutoTokenizer.from_pretrained(path).save_pretrained(path)).")
    return (f"no tokenizer.json in {path}: pagedllm needs a Hugging Face fast tokenizer."
            f"{hint} Or pass tokenizer=<directory with tokenizer.json>.")


def _read_json(path: str) -> Any:
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc


def _token_content(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _load_chat_templates(path: str, config: dict[str, Any]) -> tuple[str | None, dict[str, str]]:
    """The default chat template and the named ones, from the files HF writes."""
    jinja_file = os.path.join(path, "chat_template.jinja")
    if os.path.isfile(jinja_file):
        with open(jinja_file, encoding="utf-8") as f:
            return f.read(), {}
    json_file = _read_json(os.path.join(path, "chat_template.json"))
    raw = json_file.get("chat_template") if isinstance(json_file, dict) else None
    if raw is None:
        raw = config.get("chat_template")
    if isinstance(raw, list):
        named = {t["name"]: t["template"] for t in raw
                 if isinstance(t, dict) and "name" in t and "template" in t}
        return named.get("default"), named
    return (raw if isinstance(raw, str) else None), {}


def _cut_after_final_message(text: str, messages: list[Message]) -> str:
    final = messages[-1].get("content") if messages else None
    if not isinstance(final, str) or not final.strip():
        raise ValueError("continue_final_message needs a final message with text content")
    for needle in (final, final.strip()):
        index = text.rfind(needle)
        if index >= 0:
            return text[:index + len(needle)]
    raise ChatTemplateError("the final message's content is not in the rendered template")
