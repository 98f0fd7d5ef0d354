"""The HIP backend compiles and links: a HIP-only build dir (-DPAGEDLLM_CUDA=OFF -DPAGEDLLM_HIP=ON,
gfx90a) builds pagedllm_core with every shared GPU source of cuda/sources.cmake and the AMD-only
sources of hip/ compiled by hipcc, so a HIP source that breaks fails here; then it links the GPU
kernel test program against it and runs its host cases (compat conversions, launcher checks,
attention dispatch without FlashInfer), which need no device. Skipped where hipcc is absent (CI
installs Debian's hipcc, see .ci/run), except the check that PAGEDLLM_HIP=ON without hipcc fails
the configure while AUTO turns HIP off. Device cases run only on a ROCm machine (hip/README.md);
set PAGEDLLM_TEST_HIP_ARCHS there (e.g. gfx942) to build for its GPU."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from cmake_tools import find_tool as _tool

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(REPO, "build", "hip-ci")
GPU_TESTS_BIN = os.path.join(BUILD, "tests", "cpp", "gpu", "pagedllm_gpu_tests")
# Debian 12's hipcc (ROCm 5.2, clang 15) knows gfx90a but not gfx942; see hip/README.md.
ARCHS = os.environ.get("PAGEDLLM_TEST_HIP_ARCHS", "gfx90a")


def _configure(build_dir: str, *defines: str) -> subprocess.CompletedProcess:
    cmake, ninja = _tool("cmake"), _tool("ninja")
    args = [cmake, "-S", REPO, "-B", build_dir, "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}",
            "-DCMAKE_BUILD_TYPE=Release", "-DPAGEDLLM_CUDA=OFF", "-DPAGEDLLM_BUILD_PYTHON=OFF",
            "-DPAGEDLLM_BUILD_TESTS=OFF", *defines]
    return subprocess.run(args, capture_output=True, text=True)


@pytest.fixture(scope="module")
def hip_tools():
    if not shutil.which("hipcc"):
        pytest.skip("hipcc not found (apt-get install hipcc, or a ROCm install); the HIP build is not checked")
    if not _tool("cmake") or not _tool("ninja"):
        pytest.skip("cmake and ninja are needed (pip install cmake ninja)")


def _gpu_sources() -> list[str]:
    with open(os.path.join(REPO, "cuda", "sources.cmake"), encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"set\(\s*PAGEDLLM_GPU_SOURCES(.*?)^\)", text, re.S | re.M)
    assert block, "cuda/sources.cmake has no PAGEDLLM_GPU_SOURCES list"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.split("#")[0].strip()]


def _build(target: str) -> None:
    jobs = str(max(1, min(2, os.cpu_count() or 1)))
    r = subprocess.run([_tool("cmake"), "--build", BUILD, "--parallel", jobs, "--target", target],
                       capture_output=True, text=True)
    errors = "\n".join(ln for ln in r.stdout.splitlines() if "error" in ln or ln.startswith("FAILED"))
    assert r.returncode == 0, (f"HIP build of {target} failed:\n{errors[-6000:]}\n--- tail ---\n"
                               f"{r.stdout[-6000:]}\n{r.stderr[-3000:]}")


@pytest.fixture(scope="module")
def hip_build(hip_tools) -> str:
    r = _configure(BUILD, "-DPAGEDLLM_HIP=ON", f"-DPAGEDLLM_HIP_ARCHS={ARCHS}", "-DPAGEDLLM_BUILD_TESTS=ON")
    assert r.returncode == 0, f"HIP configure failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    assert "HIP backend on" in r.stdout, r.stdout[-3000:]
    _build("pagedllm_core")
    return BUILD


def test_hip_backend_compiles(hip_build):
    objects = os.path.join(hip_build, "hip", "objects", "cuda")
    missing = [s for s in _gpu_sources() if not os.path.exists(os.path.join(objects, s + ".o"))]
    assert not missing, f"shared GPU sources without a HIP object: {missing}"
    arch = ARCHS.split(";")[0]
    with open(os.path.join(objects, "kernels", "silu_and_mul.cu.o"), "rb") as f:
        assert f"amdgcn-amd-amdhsa--{arch}".encode() in f.read(), f"no {arch} code object in the HIP object"


def test_hip_gpu_test_program_links_and_passes_host_cases(hip_build):
    _build("pagedllm_gpu_tests")
    run = subprocess.run([GPU_TESTS_BIN], capture_output=True, text=True, timeout=1200)
    lines = [ln for ln in run.stdout.strip().splitlines() if ln.strip()]
    assert lines, f"no output (exit {run.returncode}); stderr:\n{run.stderr[-3000:]}"
    assert any(ln.startswith("[ ok ] GpuPlatform.") for ln in lines), lines[-20:]
    failed = [ln for ln in lines if ln.startswith("[FAIL]")]
    assert not failed and run.returncode == 0, (f"exit {run.returncode}; failed: {failed}\n"
                                                f"{run.stdout[-4000:]}\n{run.stderr[-3000:]}")


def test_hip_on_fails_loudly_for_an_unsupported_arch(hip_tools, tmp_path):
    r = _configure(str(tmp_path / "on"), "-DPAGEDLLM_HIP=ON", "-DPAGEDLLM_HIP_ARCHS=notanarch")
    assert r.returncode != 0
    assert "PAGEDLLM_HIP=ON but" in r.stderr and "notanarch" in r.stderr, r.stderr[-3000:]
    r = _configure(str(tmp_path / "auto"), "-DPAGEDLLM_HIP=AUTO", "-DPAGEDLLM_HIP_ARCHS=notanarch")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "HIP backend off" in r.stdout, r.stdout[-3000:]


def test_hip_on_fails_loudly_without_hipcc(tmp_path):
    if not _tool("cmake") or not _tool("ninja"):
        pytest.skip("cmake and ninja are needed (pip install cmake ninja)")
    missing = str(tmp_path / "no-rocm" / "hipcc")
    r = _configure(str(tmp_path / "on"), "-DPAGEDLLM_HIP=ON", f"-DPAGEDLLM_HIPCC={missing}")
    assert r.returncode != 0
    assert "PAGEDLLM_HIP=ON but no hipcc was found" in r.stderr, r.stderr[-3000:]
    r = _configure(str(tmp_path / "auto"), "-DPAGEDLLM_HIP=AUTO", f"-DPAGEDLLM_HIPCC={missing}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "HIP backend off (no hipcc was found)" in r.stdout, r.stdout[-3000:]
