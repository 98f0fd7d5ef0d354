"""The GPU compat layer, checked mechanically on the CPU (DESIGN.md rule 6):
(a) every gpu* name and PAGEDLLM_* macro of cuda/platform/gpu_compat.cuh is defined by its HIP
    twin hip/platform/gpu_compat.cuh;
(b) the shared GPU sources in cuda/ use no CUDA-only name directly (runtime, cuBLAS, __nv_ types,
    *_sync warp intrinsics, inline PTX, CUDA headers), so the shim covers every CUDA call the
    backend makes and hipcc compiles the same files; the CUDA-only files are the ones listed with
    a reason in cuda/sources.cmake;
(c) no source outside the two compat headers tests the platform (__HIP_PLATFORM_AMD__,
    __CUDACC__, __CUDA_ARCH__, ...)."""

from __future__ import annotations

import os
import re

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CUDA_COMPAT = "cuda/platform/gpu_compat.cuh"
HIP_COMPAT = "hip/platform/gpu_compat.cuh"
SOURCES_CMAKE = "cuda/sources.cmake"
GPU_EXTS = (".cu", ".cuh")
CPP_EXTS = (".cu", ".cuh", ".cc", ".h", ".cpp", ".hpp", ".hip")

# CUDA-only spellings and what to use instead.
CUDA_ONLY = [
    (r"\bcuda[A-Z]\w*", "a gpu* name of gpu_compat.cuh"),
    (r"\bCUDA_R_\w+|\bCUDART_\w+", "a gpu* name of gpu_compat.cuh"),
    (r"\bcu[A-Z]\w*\(", "the runtime API through gpu_compat.cuh (no driver API)"),
    (r"\bcublas\w*|\bCUBLAS_\w+|\bcublasLt\w*", "GpuGemm (gemm.cuh)"),
    (r"\b__nv_\w+|\bnv_bfloat16\w*|\bnvcuda::", "gpu_bfloat16 / gpu_half and the gpu_* conversions"),
    (r"\b__\w*bfloat16\w*\s*\(|\b__\w*bfloat162\w*", "gpu_bfloat16_to_float / gpu_float_to_bfloat16"),
    (r"\b__shfl\w*_sync\b|\b__shfl(_up|_down|_xor)?\s*\(", "gpu_shfl / gpu_shfl_xor (PAGEDLLM_WARP_SIZE lanes)"),
    (r"\b__(ballot|any|all|match_any|match_all|reduce_\w+)_sync\b|\b__activemask\b|\b__syncwarp\b",
     "a gpu* warp primitive added to both compat headers (wavefront masks are 64-bit on AMD)"),
    (r"\bwarpSize\b", "PAGEDLLM_WARP_SIZE"),
    (r"\basm\s*(volatile\s*)?\(|\b__asm__\b", "no inline PTX outside a CUDA-only file"),
    (r"\bcub::|\bthrust::|\bcuda::|\bcooperative_groups\b", "our own block primitives (no CUB/Thrust/libcu++)"),
    (r"#\s*include\s*[<\"](cuda|cub|thrust|cublas|nv|mma|crt/)[\w/.]*[>\"]", "gpu_compat.cuh"),
    (r"\b__(ldcs|ldcg|ldca|ldlu|ldcv|stcs|stcg|stwb|stwt|nanosleep|cvta_\w+|isShared|isGlobal)\b",
     "plain loads/stores (cache-hint intrinsics are CUDA-only)"),
    (r"\bwmma::|\bmma\.sync|\bcp\.async|\bwgmma|\bldmatrix", "CUDA-only tensor-core instructions in a CUDA-only file"),
]
PLATFORM_TESTS = r"\b(__HIP_PLATFORM_AMD__|__HIP_PLATFORM_HCC__|__HIP_PLATFORM_NVIDIA__|__HIPCC__|__HIP__|" \
                 r"__HIP_DEVICE_COMPILE__|__CUDACC__|__CUDA_ARCH__|__NVCC__|__CUDACC_RTC__|USE_ROCM|" \
                 r"__AMDGCN_WAVEFRONT_SIZE|__gfx\w+__)\b"


def _read(rel: str) -> str:
    with open(os.path.join(REPO, rel), encoding="utf-8") as f:
        return f.read()


def _strip_comments(text: str) -> str:
    """Drops // and /* */ comments and the contents of string literals (keeps line numbers)."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif text[i] == '"' and not re.search(r"#\s*include\s*$", text[text.rfind("\n", 0, i) + 1:i]):
            j = i + 1
            while j < n and text[j] != '"' and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append('""')
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _cmake_lists(text: str) -> dict[str, list[tuple[str, str]]]:
    """set(NAME entries...) blocks of a CMake file -> [(entry, its same-line comment)]."""
    lists, name = {}, None
    for line in text.splitlines():
        code, _, comment = line.partition("#")
        if name is None:
            m = re.match(r"\s*set\(\s*(\w+)(.*)$", code)
            if not m:
                continue
            name, code = m.group(1), m.group(2)
            lists[name] = []
        closed = ")" in code
        lists[name] += [(word, comment.strip()) for word in code.split(")")[0].split()]
        if closed:
            name = None
    return lists


def _source_lists():
    """(shared sources, {CUDA-only source or folder: reason}), paths from the repo root."""
    lists = _cmake_lists(_read(SOURCES_CMAKE))
    assert "PAGEDLLM_GPU_SOURCES" in lists, "cuda/sources.cmake must set PAGEDLLM_GPU_SOURCES"
    shared = ["cuda/" + e for e, _ in lists.pop("PAGEDLLM_GPU_SOURCES")]
    cuda_only = {"cuda/" + e: comment for entries in lists.values() for e, comment in entries}
    return shared, cuda_only


def _files(top: str, exts) -> list[str]:
    found = []
    for root, dirs, files in os.walk(os.path.join(REPO, top)):
        dirs[:] = [d for d in dirs if d not in ("build", "__pycache__") and not d.startswith(".")]
        found += [os.path.relpath(os.path.join(root, f), REPO) for f in files if f.endswith(exts)]
    return sorted(found)


def _cuda_only_files(cuda_only: dict[str, str]) -> set[str]:
    """The listed CUDA-only sources, their headers (same stem) and every file of a listed
    CUDA-only folder (e.g. cuda/flashinfer/)."""
    result = set()
    for path in cuda_only:
        if os.path.isdir(os.path.join(REPO, path)):
            result |= set(_files(path, CPP_EXTS))
        else:
            stem = os.path.splitext(path)[0]
            result |= {path} | {stem + ext for ext in (".cuh", ".h")}
    return result


def _names(text: str) -> tuple[set[str], set[str]]:
    code = _strip_comments(text)
    gpu = set(re.findall(r"\bgpu[A-Za-z0-9_]*", code))
    macros = set(re.findall(r"#\s*define\s+(PAGEDLLM_\w+)", code))
    return gpu, macros


def test_hip_header_defines_every_cuda_compat_name():
    cuda_gpu, cuda_macros = _names(_read(CUDA_COMPAT))
    hip_gpu, hip_macros = _names(_read(HIP_COMPAT))
    assert len(cuda_gpu) > 30, "parsing the CUDA compat header found too few gpu* names"
    missing = sorted(cuda_gpu - hip_gpu) + sorted(cuda_macros - hip_macros)
    assert not missing, (f"{HIP_COMPAT} lacks names that {CUDA_COMPAT} defines: {missing}. "
                         "Add the HIP equivalent of each (same meaning, same signature).")


def test_every_gpu_source_is_listed_once_and_cuda_only_ones_say_why():
    shared, cuda_only = _source_lists()
    both = sorted(set(shared) & set(cuda_only))
    assert not both, f"listed as shared and as CUDA-only in {SOURCES_CMAKE}: {both}"
    for src in shared + list(cuda_only):
        assert os.path.exists(os.path.join(REPO, src)), f"{SOURCES_CMAKE} lists a missing path {src}"
    no_reason = sorted(src for src, why in cuda_only.items() if not why)
    assert not no_reason, f"CUDA-only sources and folders need a '# reason' comment on their line: {no_reason}"
    cuda_only_files = _cuda_only_files(cuda_only)
    unlisted = sorted(f for f in _files("cuda", (".cu",)) if f not in shared and f not in cuda_only_files)
    assert not unlisted, (f"GPU sources not listed in {SOURCES_CMAKE} (the HIP build reads the lists "
                          f"there): {unlisted}")


def test_shared_gpu_sources_use_only_compat_names():
    shared, cuda_only = _source_lists()
    exempt = _cuda_only_files(cuda_only) | {CUDA_COMPAT}
    problems = []
    for rel in _files("cuda", CPP_EXTS):
        if rel in exempt:
            continue
        code = _strip_comments(_read(rel))
        for pattern, instead in CUDA_ONLY:
            for m in re.finditer(pattern, code):
                line = code.count("\n", 0, m.start()) + 1
                problems.append(f"{rel}:{line}: '{m.group(0).strip()}' is CUDA-only; use {instead}")
    assert not problems, ("shared GPU sources (built by hipcc too) use CUDA-only names; add what is "
                          "missing to both compat headers, or list the file as CUDA-only with its "
                          "reason in cuda/sources.cmake:\n" + "\n".join(problems))


def test_only_the_compat_headers_test_the_platform():
    _, cuda_only = _source_lists()
    exempt = _cuda_only_files(cuda_only) | {CUDA_COMPAT, HIP_COMPAT}  # CUDA-only files never meet hipcc
    problems = []
    for top in ("cpp", "cuda", "hip", "tests/cpp", "benchmarks"):
        for rel in _files(top, CPP_EXTS):
            if rel in exempt:
                continue
            code = _strip_comments(_read(rel))
            for m in re.finditer(PLATFORM_TESTS, code):
                line = code.count("\n", 0, m.start()) + 1
                problems.append(f"{rel}:{line}: {m.group(0)}")
    assert not problems, ("platform tests outside cuda/platform/ and hip/platform/ (DESIGN.md rule 6: "
                          "put the difference in both compat headers):\n" + "\n".join(problems))


def test_checker_catches_violations():
    code = _strip_comments('x = cudaMalloc(&p, n); // cudaFree\nconst char* s = "cudaStream_t";\n'
                           "v = __shfl_xor_sync(0xffffffff, v, 1);\n#ifdef __CUDA_ARCH__\n")
    hits = [m.group(0) for pattern, _ in CUDA_ONLY for m in re.finditer(pattern, code)]
    assert hits == ["cudaMalloc", "__shfl_xor_sync"], hits
    assert re.findall(PLATFORM_TESTS, code) == ["__CUDA_ARCH__"]
    lists = _cmake_lists("set(A\n  x.cu  # why\n  y.cu\n)\n")
    assert lists == {"A": [("x.cu", "why"), ("y.cu", "")]}
