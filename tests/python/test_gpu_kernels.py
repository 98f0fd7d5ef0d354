"""The GPU kernel test program (tests/cpp/gpu, pagedllm_gpu_tests): built in the same CMake tree
as test_cpp_programs.py (build/cpp-tests, CUDA on when nvcc is found), run once per session.
Without nvcc both tests skip; without a device the program runs only its host cases (host
references, launcher shape checks, op coverage) and the device test skips."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from cmake_tools import find_tool as _tool

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(REPO, "build", "cpp-tests")
GPU_TESTS_BIN = os.path.join(BUILD, "tests", "cpp", "gpu", "pagedllm_gpu_tests")
SKIP_PREFIX = "SKIPPED: no GPU"


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    default = "/usr/local/cuda/bin/nvcc"
    return default if os.path.exists(default) else None


@pytest.fixture(scope="module")
def gpu_run() -> subprocess.CompletedProcess:
    cmake, ninja = _tool("cmake"), _tool("ninja")
    if not cmake or not ninja:
        pytest.skip("cmake and ninja are needed to build the GPU tests (pip install cmake ninja)")
    if not _nvcc():
        pytest.skip("no CUDA compiler (nvcc): the GPU kernels are not built")
    configure = [cmake, "-S", REPO, "-B", BUILD, "-G", "Ninja", "-DPAGEDLLM_BUILD_TESTS=ON",
                 "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
    if not os.path.exists(os.path.join(BUILD, "CMakeCache.txt")):
        r = subprocess.run(configure, capture_output=True, text=True)
        assert r.returncode == 0, f"cmake configure failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    jobs = str(max(1, min(4, os.cpu_count() or 1)))
    r = subprocess.run([cmake, "--build", BUILD, "--parallel", jobs, "--target", "pagedllm_gpu_tests"],
                       capture_output=True, text=True)
    if r.returncode != 0 and "unknown target" in (r.stdout + r.stderr):
        pytest.skip("build/cpp-tests is configured without CUDA (PAGEDLLM_CUDA=OFF or no nvcc at configure)")
    assert r.returncode == 0, f"build failed:\n{r.stdout[-6000:]}\n{r.stderr[-4000:]}"
    return subprocess.run([GPU_TESTS_BIN], capture_output=True, text=True, timeout=1200)


def _lines(run: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in run.stdout.strip().splitlines() if ln.strip()]


def _failed(run: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in _lines(run) if ln.startswith("[FAIL]")]


def test_gpu_program_host_cases(gpu_run):
    """Host references, launcher shape checks and op coverage: run with or without a device."""
    lines = _lines(gpu_run)
    assert lines, f"no output; stderr:\n{gpu_run.stderr[-3000:]}"
    host = [ln for ln in lines if ln.startswith(("[ ok ] ", "[FAIL] ")) and not ln[7:].startswith("Gpu_")]
    assert any("GpuCoverage." in ln for ln in host), lines
    bad = [ln for ln in host if ln.startswith("[FAIL]")]
    assert not bad, f"failed: {bad}\n{gpu_run.stderr[-4000:]}"


@pytest.mark.gpu
def test_gpu_kernels_match_host_reference(gpu_run):
    """Every GPU launcher against its host reference on the device (skips without one)."""
    lines = _lines(gpu_run)
    assert lines, f"no output; stderr:\n{gpu_run.stderr[-3000:]}"
    if lines[-1].startswith(SKIP_PREFIX):
        pytest.skip(lines[-1])
    assert gpu_run.returncode == 0, f"exit {gpu_run.returncode}; failed: {_failed(gpu_run)}\n" \
                                    f"{gpu_run.stdout[-4000:]}\n{gpu_run.stderr[-4000:]}"
    words = lines[-1].split()
    assert len(words) == 4 and words[1:] == ["passed,", "0", "failed"], lines[-1]
    assert int(words[0]) == sum(1 for ln in lines if ln.startswith("[ ok ]"))
    assert any(ln.startswith("[ ok ] Gpu_") for ln in lines), "no device case ran"
