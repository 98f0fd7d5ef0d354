# FlashInfer for the CUDA build: finds FlashInfer's header-only kernels (from the flashinfer-python
# wheel; no FlashInfer code is copied into the repository) and builds our glue (cuda/flashinfer/).
#
#   pagedllm_add_flashinfer(<target>)   called by cuda/CMakeLists.txt with pagedllm_core
#
# Headers are looked up in this order:
#   1. PAGEDLLM_FLASHINFER_DIR: a wheel's flashinfer/data directory (holds include/ and
#      cccl/libcudacxx/include/); an invalid directory is a configure error;
#   2. an installed `flashinfer` Python package (its data/ directory; the package is not imported);
#   3. the flashinfer-python==PAGEDLLM_FLASHINFER_VERSION wheel, fetched once into
#      PAGEDLLM_DEPS_CACHE (pagedllm_wheel_fetch.cmake), keeping only data/include and
#      data/cccl/libcudacxx/include (about 6 MB of the 62 MB wheel).
# Not found (or PAGEDLLM_FLASHINFER=OFF): a warning, the build goes on without FlashInfer and
# attention_backend "flashinfer" fails with a clear error ("auto" then means native).
#
# FlashInfer needs CCCL >= 3.6 (cuda::fast_mod_div); CUDA 13.0 ships 3.0, so the wheel's
# libcudacxx include goes BEFORE the toolkit's (the toolkit's include dir is nvcc's implicit,
# last, search path). Only the variants we use are instantiated: bf16 (fp16 with
# PAGEDLLM_FLASHINFER_FP16=ON) x head_dim 64/128/256, one TU each (decode + causal paged prefill).
include_guard(GLOBAL)
include(pagedllm_wheel_fetch)

set(PAGEDLLM_FLASHINFER "AUTO" CACHE STRING "FlashInfer attention kernels: AUTO (when its headers are found) or OFF")
set_property(CACHE PAGEDLLM_FLASHINFER PROPERTY STRINGS AUTO OFF)
set(PAGEDLLM_FLASHINFER_DIR "" CACHE PATH "flashinfer/data directory of a flashinfer-python wheel")
set(PAGEDLLM_FLASHINFER_VERSION "0.7.2.post1" CACHE STRING "flashinfer-python wheel whose headers are fetched")
option(PAGEDLLM_FLASHINFER_FP16 "Also instantiate FlashInfer's float16 kernels" OFF)

# True in <out> when <dir> holds FlashInfer's headers and the vendored libcudacxx.
function(_pagedllm_flashinfer_valid dir out)
  if(EXISTS "${dir}/include/flashinfer/attention/decode.cuh" AND EXISTS "${dir}/cccl/libcudacxx/include/cuda/cmath")
    set(${out} TRUE PARENT_SCOPE)
  else()
    set(${out} FALSE PARENT_SCOPE)
  endif()
endfunction()

# Sets <out> to the flashinfer/data directory, or "" with a warning saying why.
function(_pagedllm_find_flashinfer out)
  set(${out} "" PARENT_SCOPE)
  if(PAGEDLLM_FLASHINFER_DIR)
    _pagedllm_flashinfer_valid("${PAGEDLLM_FLASHINFER_DIR}" ok)
    if(NOT ok)
      message(FATAL_ERROR "pagedllm: PAGEDLLM_FLASHINFER_DIR=${PAGEDLLM_FLASHINFER_DIR} has no "
                          "include/flashinfer/attention/decode.cuh and cccl/libcudacxx/include (want a wheel's flashinfer/data)")
    endif()
    set(${out} "${PAGEDLLM_FLASHINFER_DIR}" PARENT_SCOPE)
    return()
  endif()
  if(NOT Python_EXECUTABLE AND NOT Python3_EXECUTABLE)
    find_package(Python COMPONENTS Interpreter QUIET)
  endif()
  set(python "${Python_EXECUTABLE}")
  if(NOT python)
    set(python "${Python3_EXECUTABLE}")
  endif()
  if(python)
    execute_process(
      COMMAND "${python}" -c "import importlib.util as u; s = u.find_spec('flashinfer'); print(list(s.submodule_search_locations)[0] if s and s.submodule_search_locations else '')"
      RESULT_VARIABLE rc OUTPUT_VARIABLE pkg ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(rc EQUAL 0 AND pkg)
      _pagedllm_flashinfer_valid("${pkg}/data" ok)
      if(ok)
        set(${out} "${pkg}/data" PARENT_SCOPE)
        return()
      endif()
    endif()
  endif()
  pagedllm_fetch_wheel(root NAME flashinfer-python VERSION ${PAGEDLLM_FLASHINFER_VERSION}
                       SUBDIRS flashinfer/data/include flashinfer/data/cccl/libcudacxx/include)
  if(root)
    set(${out} "${root}/flashinfer/data" PARENT_SCOPE)
    return()
  endif()
  message(WARNING "pagedllm: building without FlashInfer (attention_backend 'flashinfer' unavailable): no "
                  "PAGEDLLM_FLASHINFER_DIR, no installed flashinfer package, and fetching flashinfer-python=="
                  "${PAGEDLLM_FLASHINFER_VERSION} failed: ${root_ERROR}")
endfunction()

function(pagedllm_add_flashinfer target)
  set(PAGEDLLM_WITH_FLASHINFER OFF PARENT_SCOPE)
  if(PAGEDLLM_FLASHINFER STREQUAL "OFF")
    message(STATUS "pagedllm: FlashInfer off (PAGEDLLM_FLASHINFER=OFF)")
    return()
  endif()
  _pagedllm_find_flashinfer(data)
  if(NOT data)
    return()
  endif()
  set(dir "${PROJECT_SOURCE_DIR}/cuda/flashinfer")
  set(sources ${dir}/flashinfer_attention.cu ${dir}/flashinfer_bf16_hd64.cu ${dir}/flashinfer_bf16_hd128.cu
              ${dir}/flashinfer_bf16_hd256.cu)
  set(fp16 0)
  if(PAGEDLLM_FLASHINFER_FP16)
    list(APPEND sources ${dir}/flashinfer_fp16_hd64.cu ${dir}/flashinfer_fp16_hd128.cu ${dir}/flashinfer_fp16_hd256.cu)
    set(fp16 1)
  endif()
  add_library(pagedllm_flashinfer OBJECT ${sources})
  target_include_directories(pagedllm_flashinfer BEFORE PRIVATE "${data}/cccl/libcudacxx/include" "${data}/include")
  target_include_directories(pagedllm_flashinfer PRIVATE
    ${PROJECT_SOURCE_DIR}/cuda ${PROJECT_SOURCE_DIR}/cuda/platform ${PROJECT_SOURCE_DIR}/cpp/src ${PROJECT_SOURCE_DIR}/cpp/include)
  target_compile_definitions(pagedllm_flashinfer PRIVATE FLASHINFER_ENABLE_BF16 PAGEDLLM_FLASHINFER_FP16=${fp16}
                             $<$<BOOL:${fp16}>:FLASHINFER_ENABLE_F16>)
  target_compile_options(pagedllm_flashinfer PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -use_fast_math -static-global-template-stub=false -Xfatbin=-compress-all -O3>)
  target_sources(${target} PRIVATE $<TARGET_OBJECTS:pagedllm_flashinfer>)
  target_compile_definitions(${target} PRIVATE PAGEDLLM_WITH_FLASHINFER=1)
  set(PAGEDLLM_WITH_FLASHINFER ON PARENT_SCOPE)
  message(STATUS "pagedllm: FlashInfer headers from ${data} (fp16 kernels: ${PAGEDLLM_FLASHINFER_FP16})")
endfunction()
