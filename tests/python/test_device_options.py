"""Device options (device, gpu_memory_utilization, enforce_eager, attention_backend,
cuda_graph_sizes): they reach the C++ EngineConfig from LLM() and from both CLI commands, bad
values fail with clear errors in Python and in C++, and asking for a GPU gives the right error
for this build (no CUDA backend, or no device). Also checks that a build with nvcc really
compiled the CUDA backend."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from pagedllm import _core
from pagedllm.cli import build_parser
from pagedllm.engine_args import EngineArgs
from pagedllm.llm import LLM

GPU_OPTIONS = dict(device="cuda:1", gpu_memory_utilization=0.5, enforce_eager=True,
                   attention_backend="native", cuda_graph_sizes=[1, 2, 8])


def _gpu_error_expected() -> str:
    """The phrase the error of device='cuda' contains in this build on a GPU-less machine."""
    backends = _core.built_backends()
    if len(backends) == 1:
        return "this build has no cuda backend"
    return f"no {backends[1]} device is available"


def test_options_reach_the_core_config() -> None:
    config = EngineArgs(model="demo", **GPU_OPTIONS).to_core_config("/models/x")
    assert config.device == "cuda:1"
    assert config.gpu_memory_utilization == pytest.approx(0.5)
    assert config.enforce_eager is True
    assert config.attention_backend == "native"
    assert list(config.cuda_graph_sizes) == [1, 2, 8]
    default = EngineArgs(model="demo").to_core_config("/models/x")
    assert (default.device, default.gpu_memory_utilization, default.enforce_eager,
            default.attention_backend, list(default.cuda_graph_sizes)) == ("cpu", pytest.approx(0.9),
                                                                         False, "auto", [])


def test_float16_is_a_gpu_dtype() -> None:
    assert EngineArgs(model="demo", device="cuda", dtype="half").dtype == "float16"
    with pytest.raises(ValueError, match="not supported on the CPU backend"):
        EngineArgs(model="demo", dtype="float16")


@pytest.mark.parametrize("command", ["generate", "serve"])
def test_cli_flags_for_both_commands(command: str) -> None:
    argv = [command, "--device", "cuda:1", "--gpu-memory-utilization", "0.5", "--enforce-eager",
            "--attention-backend", "native", "--cuda-graph-sizes", "1", "2", "8", "--model", "demo"]
    args = EngineArgs.from_cli_args(build_parser().parse_args(argv))
    for name, value in GPU_OPTIONS.items():
        assert getattr(args, name) == value, name
    defaults = EngineArgs.from_cli_args(build_parser().parse_args([command]))
    assert (defaults.device, defaults.enforce_eager, defaults.attention_backend,
            defaults.cuda_graph_sizes) == ("cpu", False, "auto", None)


@pytest.mark.parametrize("options,message", [
    (dict(device="tpu"), "unknown device 'tpu'"),
    (dict(device="cuda:x"), "unknown device 'cuda:x'"),
    (dict(device="cuda:-1"), "unknown device"),
    (dict(gpu_memory_utilization=0.0), r"gpu_memory_utilization must be a number in \(0, 1\]"),
    (dict(gpu_memory_utilization=1.5), r"gpu_memory_utilization must be a number in \(0, 1\]"),
    (dict(enforce_eager="yes"), "enforce_eager must be a bool"),
    (dict(attention_backend="xformers"), "unknown attention_backend 'xformers'"),
    (dict(cuda_graph_sizes=[0]), r"cuda_graph_sizes entries must be ints in \[1, max_num_seqs"),
    (dict(cuda_graph_sizes=[4, 300]), r"max_num_seqs = 256\], got 300"),
])
def test_bad_values_are_rejected_in_python(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        LLM("demo", log_stats=False, **options)


@pytest.mark.parametrize("field,value,message", [
    ("gpu_memory_utilization", 0.0, r"gpu_memory_utilization must be in \(0, 1\]"),
    ("gpu_memory_utilization", 1.01, r"gpu_memory_utilization must be in \(0, 1\]"),
    ("attention_backend", "flash", "unknown attention_backend 'flash'"),
    ("cuda_graph_sizes", [1, 512], r"cuda_graph_sizes entries must be in \[1, max_num_seqs = 256\]"),
    ("device", "tpu:0", "unknown device 'tpu:0'"),
    ("device", "cuda:abc", "malformed device 'cuda:abc'"),
])
def test_bad_values_are_rejected_by_the_core(get_model, field, value, message) -> None:
    config = _core.EngineConfig()
    config.model = get_model("llama", "float32")
    config.log_stats = False
    setattr(config, field, value)
    with pytest.raises(ValueError, match=message):
        _core.Engine(config)


def test_cuda_device_gives_a_clear_error_without_a_gpu() -> None:
    try:
        LLM("demo", device="cuda", log_stats=False)
    except ValueError as exc:
        assert _gpu_error_expected() in str(exc).lower(), str(exc)
        if len(_core.built_backends()) == 1:
            assert "PAGEDLLM_CUDA=ON" in str(exc)
    else:
        pytest.skip("a GPU is present: the CUDA backend started")


def test_cli_reports_a_missing_gpu_cleanly() -> None:
    run = subprocess.run([sys.executable, "-m", "pagedllm", "generate", "--model", "demo",
                          "--device", "cuda", "--max-tokens", "2", "hi"],
                         capture_output=True, text=True, timeout=120)
    if run.returncode == 0:
        pytest.skip("a GPU is present: the CUDA backend started")
    assert run.returncode == 1, run.stderr
    assert "pagedllm: error:" in run.stderr and _gpu_error_expected() in run.stderr.lower(), run.stderr
    assert "Traceback" not in run.stderr


def test_vllm_style_gpu_kwargs_are_real_options() -> None:
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        LLM("demo", gpu_memory_utilization=2.0, log_stats=False)


def test_cuda_backend_is_built_when_nvcc_is_present() -> None:
    """A build that found nvcc (PAGEDLLM_CUDA=AUTO or ON) must contain the CUDA backend: a
    silently skipped CUDA build (e.g. cuBLAS headers not found) fails here."""
    info = _core.build_info()
    assert info.backends[0] == "cpu"
    if info.cuda_compiler_found:
        assert "cuda" in info.backends, "nvcc was found but the CUDA backend was not built"
    elif shutil.which("nvcc"):
        pytest.skip("this module was built with PAGEDLLM_CUDA=OFF")
