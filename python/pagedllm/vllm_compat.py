"""vLLM constructor options that pagedllm accepts for drop-in compatibility.

Options that only tune GPU memory or compilation are ignored with a warning; options that
would change results are accepted only at the value pagedllm implements, otherwise rejected.
"""

from __future__ import annotations

import warnings
from typing import Any

_IGNORED = {
    "swap_space": "preempted requests are recomputed, not swapped",
    "max_seq_len_to_capture": "graphs are captured for decode steps only (cuda_graph_sizes)",
    "compilation_config": "there is no compilation step",
    "disable_custom_all_reduce": "there is a single device",
    "disable_async_output_proc": "output processing is synchronous",
    "trust_remote_code": "pagedllm runs only its built-in architectures",
    "hf_token": "log in with `hf auth login` to reach private models",
    "max_logprobs": "logprobs and prompt_logprobs are capped at 20",
    "disable_log_stats": "use log_stats",
    "use_v2_block_manager": "there is one block manager",
}

_ONLY = {
    "tensor_parallel_size": (1,),
    "pipeline_parallel_size": (1,),
    "data_parallel_size": (1,),
    "quantization": (None,),
    "kv_cache_dtype": ("auto",),
    "cpu_offload_gb": (0,),
    "enable_lora": (False,),
    "skip_tokenizer_init": (False,),
    "speculative_config": (None,),
    "hf_overrides": (None,),
    "load_format": ("auto", "safetensors"),
    "task": ("auto", "generate"),
    "runner": ("auto", "generate"),
    "tokenizer_mode": ("auto", "hf", "fast"),
    "distributed_executor_backend": (None,),
}


def check_vllm_kwargs(kwargs: dict[str, Any], caller: str = "LLM") -> None:
    """Warns about ignored vLLM options; raises ValueError for an option at a value pagedllm
    does not implement and TypeError for an unknown keyword."""
    for name, value in kwargs.items():
        if name in _ONLY:
            allowed = _ONLY[name]
            if value not in allowed:
                choices = " or ".join(repr(v) for v in allowed)
                raise ValueError(f"{name}={value!r} is not supported by pagedllm "
                                 f"(only {choices})")
        elif name in _IGNORED:
            warnings.warn(f"pagedllm ignores {name}={value!r}: {_IGNORED[name]}",
                          UserWarning, stacklevel=3)
        else:
            raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}")
