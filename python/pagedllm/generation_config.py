"""The model's own sampling defaults, from generation_config.json (as vLLM applies them)."""

from __future__ import annotations

import json
import os
from typing import Any

_FIELDS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
           "min_p": "min_p", "repetition_penalty": "repetition_penalty",
           "max_new_tokens": "max_tokens"}


def sampling_defaults(model_dir: str) -> dict[str, Any]:
    """SamplingParams overrides from ``model_dir``/generation_config.json ({} if none)."""
    path = os.path.join(model_dir, "generation_config.json")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(config, dict):
        return {}
    return {ours: config[theirs] for theirs, ours in _FIELDS.items()
            if config.get(theirs) is not None}
