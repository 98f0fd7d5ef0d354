"""EngineArgs: every engine option in one place, validated, with its command-line flags."""

from __future__ import annotations

import argparse
import dataclasses
import re
from dataclasses import dataclass
from typing import Any

_DTYPES = {"auto": "auto", "float32": "float32", "float": "float32", "fp32": "float32",
           "bfloat16": "bfloat16", "bf16": "bfloat16"}
_FLOAT16_DTYPES = ("float16", "half", "fp16")
_ATTENTION_BACKENDS = ("auto", "flashinfer", "native")
_SIZE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
               "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


@dataclass
class EngineArgs:
    """Options of one engine; None means "derive it" (from the model or the machine)."""

    model: str
    tokenizer: str | None = None
    revision: str | None = None
    tokenizer_revision: str | None = None
    download_dir: str | None = None
    dtype: str = "auto"
    max_model_len: int | None = None
    max_num_seqs: int = 256
    max_num_batched_tokens: int | None = None
    block_size: int = 16
    enable_chunked_prefill: bool = True
    enable_prefix_caching: bool = True
    num_kv_blocks: int | None = None
    kv_cache_memory_bytes: int | None = None
    num_threads: int | None = None
    seed: int | None = 0
    log_stats: bool = True
    device: str = "cpu"
    gpu_memory_utilization: float = 0.9
    enforce_eager: bool = False
    attention_backend: str = "auto"
    cuda_graph_sizes: list[int] | None = None

    def __post_init__(self) -> None:
        self.device = normalize_device(self.device)
        self.dtype = normalize_dtype(self.dtype, self.device)
        self._check_gpu_options()
        for name in ("max_num_seqs", "block_size"):
            _check_positive(name, getattr(self, name), optional=False)
        for name in ("max_model_len", "max_num_batched_tokens", "num_kv_blocks",
                     "kv_cache_memory_bytes", "num_threads"):
            _check_positive(name, getattr(self, name), optional=True)
        if self.seed is None:
            self.seed = 0
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")

    def _check_gpu_options(self) -> None:
        util = self.gpu_memory_utilization
        if isinstance(util, bool) or not isinstance(util, (int, float)) or not 0 < util <= 1:
            raise ValueError(f"gpu_memory_utilization must be a number in (0, 1], got {util!r}")
        self.gpu_memory_utilization = float(util)
        if not isinstance(self.enforce_eager, bool):
            raise ValueError(f"enforce_eager must be a bool, got {self.enforce_eager!r}")
        if self.attention_backend not in _ATTENTION_BACKENDS:
            raise ValueError(f"unknown attention_backend {self.attention_backend!r}: use "
                             + ", ".join(repr(b) for b in _ATTENTION_BACKENDS))
        if self.cuda_graph_sizes is not None:
            sizes = list(self.cuda_graph_sizes)
            for size in sizes:
                if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= self.max_num_seqs:
                    raise ValueError(f"cuda_graph_sizes entries must be ints in [1, max_num_seqs = "
                                     f"{self.max_num_seqs}], got {size!r}")
            self.cuda_graph_sizes = sizes

    def to_core_config(self, model_dir: str) -> Any:
        """The ``pagedllm._core.EngineConfig`` for the resolved ``model_dir``."""
        from pagedllm import _core

        config = _core.EngineConfig()
        config.model = model_dir
        config.dtype = self.dtype
        config.device = self.device
        config.max_model_len = self.max_model_len or 0
        config.max_num_seqs = self.max_num_seqs
        config.max_num_batched_tokens = self.max_num_batched_tokens or 0
        config.block_size = self.block_size
        config.num_kv_blocks = self.num_kv_blocks or 0
        config.kv_cache_memory_bytes = self.kv_cache_memory_bytes or 0
        config.enable_chunked_prefill = self.enable_chunked_prefill
        config.enable_prefix_caching = self.enable_prefix_caching
        config.num_threads = self.num_threads or 0
        config.seed = self.seed % 2**64
        config.log_stats = self.log_stats
        config.gpu_memory_utilization = self.gpu_memory_utilization
        config.enforce_eager = self.enforce_eager
        config.attention_backend = self.attention_backend
        config.cuda_graph_sizes = list(self.cuda_graph_sizes or [])
        return config

    @staticmethod
    def add_cli_args(parser: argparse.ArgumentParser, default_model: str | None = None) -> None:
        """Adds the engine flags (``--max-model-len`` etc.) to ``parser``."""
        group = parser.add_argument_group("engine")
        group.add_argument("--model", default=default_model, required=default_model is None,
                           help="model directory, Hugging Face id, or 'demo' "
                                "(default: %(default)s)")
        group.add_argument("--tokenizer", help="tokenizer directory or id (default: the model)")
        group.add_argument("--revision", help="hub revision (branch, tag or commit)")
        group.add_argument("--tokenizer-revision", help="hub revision of the tokenizer")
        group.add_argument("--download-dir", help="Hugging Face cache directory to use")
        group.add_argument("--dtype", default="auto", choices=sorted(_DTYPES),
                           help="weight and compute dtype (default: %(default)s)")
        group.add_argument("--max-model-len", type=int,
                           help="longest prompt + output in tokens (default: from the model)")
        group.add_argument("--max-num-seqs", type=int, default=256,
                           help="most requests in one step (default: %(default)s)")
        group.add_argument("--max-num-batched-tokens", type=int,
                           help="token budget of one step (default: automatic)")
        group.add_argument("--block-size", type=int, default=16,
                           help="tokens per KV-cache block (default: %(default)s)")
        group.add_argument("--enable-chunked-prefill", default=True,
                           action=argparse.BooleanOptionalAction,
                           help="split long prompts across steps (default: on)")
        group.add_argument("--enable-prefix-caching", default=True,
                           action=argparse.BooleanOptionalAction,
                           help="reuse the KV cache of shared prompt prefixes (default: on)")
        group.add_argument("--num-kv-blocks", type=int,
                           help="exact number of KV-cache blocks (default: from memory)")
        group.add_argument("--kv-cache-memory-bytes", type=parse_size,
                           help="KV-cache memory, e.g. 4GiB (default: automatic)")
        group.add_argument("--num-threads", type=int, help="CPU threads (default: all cores)")
        group.add_argument("--seed", type=int, default=0,
                           help="seed of requests without one (default: %(default)s)")
        group.add_argument("--disable-log-stats", action="store_true",
                           help="do not print the KV-cache size at start-up")
        gpu = parser.add_argument_group("device")
        gpu.add_argument("--device", default="cpu",
                         help="cpu, cuda (= cuda:0) or cuda:N (default: %(default)s)")
        gpu.add_argument("--gpu-memory-utilization", type=float, default=0.9,
                         help="GPU: fraction of the GPU's memory to use (default: %(default)s)")
        gpu.add_argument("--enforce-eager", action="store_true",
                         help="GPU: run every step eagerly, without CUDA graphs")
        gpu.add_argument("--attention-backend", default="auto", choices=_ATTENTION_BACKENDS,
                         help="GPU: attention kernels (default: %(default)s)")
        gpu.add_argument("--cuda-graph-sizes", type=int, nargs="+", metavar="N",
                         help="GPU: decode batch sizes captured as CUDA graphs "
                              "(default: 1 2 4 8, then every 8 up to --max-num-seqs)")

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace) -> EngineArgs:
        names = {f.name for f in dataclasses.fields(cls)} - {"log_stats"}
        values = {name: getattr(args, name) for name in names if hasattr(args, name)}
        return cls(**values, log_stats=not getattr(args, "disable_log_stats", False))


def normalize_dtype(dtype: Any, device: str = "cpu") -> str:
    """The canonical name of a dtype ("auto", "float32", "bfloat16", and "float16" on a GPU);
    ValueError else."""
    name = str(dtype).lower().removeprefix("torch.")
    if name in _DTYPES:
        return _DTYPES[name]
    if name in _FLOAT16_DTYPES:
        if device != "cpu":
            return "float16"
        raise ValueError(
            f"dtype {dtype!r} is not supported on the CPU backend: use 'bfloat16' or 'float32' "
            "(with dtype='auto' a float16 checkpoint runs in bfloat16)")
    raise ValueError(f"unknown dtype {dtype!r}: use 'auto', 'float32' or 'bfloat16'")


def normalize_device(device: Any) -> str:
    """The canonical device name: "cpu" (also for "auto"), "cuda" (device 0) or "cuda:N";
    ValueError when malformed. Whether the device exists is checked when the engine starts."""
    name = str(device).strip().lower()
    if name in ("cpu", "auto"):
        return "cpu"
    if name == "cuda":
        return "cuda"
    if re.fullmatch(r"cuda:\d{1,6}", name):
        return f"cuda:{int(name[5:])}"
    raise ValueError(f"unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N'")


def parse_size(text: str) -> int:
    """Bytes in ``"4GiB"``, ``"512M"`` or ``"1000000"``; ValueError when unreadable."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*", text.lower())
    if match is None:
        raise ValueError(f"not a size: {text!r} (try 4GiB or 512MB)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2) or ""])


def _check_positive(name: str, value: Any, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int{' or None' if optional else ''}, "
                         f"got {value!r}")
