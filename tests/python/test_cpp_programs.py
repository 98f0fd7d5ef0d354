"""The native side: builds the C++ tests and the example program with CMake + Ninja (once per
session, reusing build/cpp-tests), runs the C++ test binary, and runs the example program on a
tiny checkpoint, comparing its greedy ids with Hugging Face's."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

import models
from cmake_tools import find_tool as _tool

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(REPO, "build", "cpp-tests")
TESTS_BIN = os.path.join(BUILD, "tests", "cpp", "pagedllm_cpp_tests")
EXAMPLE_BIN = os.path.join(BUILD, "cpp", "examples", "pagedllm_generate")


@pytest.fixture(scope="module")
def built() -> str:
    cmake, ninja = _tool("cmake"), _tool("ninja")
    if not cmake or not ninja:
        pytest.skip("cmake and ninja are needed to build the C++ tests (pip install cmake ninja)")
    if not shutil.which("c++") and not shutil.which("g++") and not shutil.which("clang++"):
        pytest.skip("no C++ compiler found")
    env = dict(os.environ)
    configure = [cmake, "-S", REPO, "-B", BUILD, "-G", "Ninja", "-DPAGEDLLM_BUILD_TESTS=ON",
                 "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
    if not os.path.exists(os.path.join(BUILD, "CMakeCache.txt")):
        r = subprocess.run(configure, capture_output=True, text=True, env=env)
        assert r.returncode == 0, f"cmake configure failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    jobs = str(max(1, min(4, os.cpu_count() or 1)))
    r = subprocess.run([cmake, "--build", BUILD, "--parallel", jobs,
                        "--target", "pagedllm_cpp_tests", "pagedllm_generate"], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, f"build failed:\n{r.stdout[-6000:]}\n{r.stderr[-4000:]}"
    assert os.path.exists(TESTS_BIN) and os.path.exists(EXAMPLE_BIN)
    return BUILD


def test_cpp_unit_tests_pass(built):
    r = subprocess.run([TESTS_BIN], capture_output=True, text=True, timeout=600)
    lines = [ln for ln in r.stdout.strip().splitlines() if ln.strip()]
    assert lines, f"no output; stderr:\n{r.stderr[-3000:]}"
    last = lines[-1]
    failed = [ln for ln in lines if ln.startswith("[FAIL]")]
    assert r.returncode == 0, f"exit {r.returncode}; failed: {failed}\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}"
    words = last.split()
    assert len(words) == 4 and words[1:] == ["passed,", "0", "failed"], last
    assert int(words[0]) > 0
    assert int(words[0]) == sum(1 for ln in lines if ln.startswith("[ ok ]"))


@pytest.mark.parametrize("name,dtype", [("llama", "float32"), ("qwen3", "float32"), ("llama", "bfloat16")])
def test_native_example_matches_hf_greedy(built, get_model, name, dtype):
    model_dir = get_model(name, dtype)
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8], [9]]
    args = [EXAMPLE_BIN, model_dir, "--max-tokens", "8"] + [",".join(map(str, p)) for p in prompts]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    got = {}
    for line in r.stdout.strip().splitlines():
        index, _, ids = line.partition(":")
        got[int(index)] = [int(t) for t in ids.split()]
    assert sorted(got) == list(range(len(prompts))), r.stdout
    hf = models.load_hf(model_dir)
    tie = 2e-3 if dtype == "float32" else 0.3
    for i, p in enumerate(prompts):
        # the example stops at EOS (id 2) like any engine without ignore_eos
        ref, margins = models.hf_greedy(hf, p, 8)
        if models.EOS_TOKEN_ID in ref:
            cut = ref.index(models.EOS_TOKEN_ID) + 1
            ref, margins = ref[:cut], margins[:cut]
        models.assert_greedy_equal(got[i], ref, margins, tie, f"example prompt {i}")


def test_native_example_rejects_bad_model(built, tmp_path):
    r = subprocess.run([EXAMPLE_BIN, str(tmp_path / "missing"), "1,2"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "error" in r.stderr.lower()
    r = subprocess.run([EXAMPLE_BIN], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "usage" in r.stderr
