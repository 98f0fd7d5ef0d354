"""Typed, bounded reading of a JSON request body; every bad value is a 400 naming its field."""

from __future__ import annotations

import math
from typing import Any

from pagedllm.entrypoints.openai.errors import bad_request

MAX_INT = 2**63 - 1


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)


class Fields:
    """The fields of one JSON object. Absent and null fields give the default."""

    def __init__(self, data: Any, where: str = "the request body") -> None:
        if not isinstance(data, dict):
            raise bad_request(f"{where} must be a JSON object, got {_type_name(data)}")
        self.data = data

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def raw(self, name: str) -> Any:
        return self.data.get(name)

    def integer(self, name: str, default: int | None = None, lo: int | None = None,
            hi: int | None = None) -> int | None:
        value = self.data.get(name)
        if value is None:
            return default
        if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_INT:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_request(f"{name} must be an integer, got {_type_name(value)}", name)
        return check_range(name, value, lo, hi)

    def number(self, name: str, default: float | None = None, lo: float | None = None,
              hi: float | None = None) -> float | None:
        value = self.data.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad_request(f"{name} must be a number, got {_type_name(value)}", name)
        if isinstance(value, int) and abs(value) > MAX_INT:
            raise bad_request(f"{name} is out of range: {value}", name)
        value = float(value)
        if not math.isfinite(value):
            raise bad_request(f"{name} must be a finite number, got {value}", name)
        return check_range(name, value, lo, hi)

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise bad_request(f"{name} must be a boolean, got {_type_name(value)}", name)
        return value

    def string(self, name: str, default: str | None = None) -> str | None:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise bad_request(f"{name} must be a string, got {_type_name(value)}", name)
        return value

    def str_list(self, name: str, max_items: int) -> list[str]:
        """A string or a list of strings, as a list (empty when absent)."""
        value = self.data.get(name)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad_request(f"{name} must be a string or a list of strings", name)
        if len(value) > max_items:
            raise bad_request(f"{name} has {len(value)} entries; at most {max_items} are "
                              "allowed", name)
        return list(value)

    def int_list(self, name: str, lo: int, hi: int, max_items: int) -> list[int]:
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise bad_request(f"{name} must be a list of integers", name)
        if len(value) > max_items:
            raise bad_request(f"{name} has {len(value)} entries; at most {max_items} are "
                              "allowed", name)
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int):
                raise bad_request(f"{name} must be a list of integers", name)
            check_range(name, item, lo, hi)
        return list(value)

    def object(self, name: str) -> Fields | None:
        value = self.data.get(name)
        if value is None:
            return None
        return Fields(value, where=name)


def check_range(name: str, value: Any, lo: Any, hi: Any) -> Any:
    if lo is not None and value < lo:
        raise bad_request(f"{name} must be at least {lo}, got {value}", name)
    if hi is not None and value > hi:
        raise bad_request(f"{name} must be at most {hi}, got {value}", name)
    return value
