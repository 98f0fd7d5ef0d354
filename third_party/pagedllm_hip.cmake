# Decides whether the HIP backend (AMD Instinct GPUs) is built and finds its compiler.
#   PAGEDLLM_HIP = AUTO (default: build when hipcc is found and compiles for HIP_PLATFORM=amd and
#                  every arch in PAGEDLLM_HIP_ARCHS), ON (fail loudly otherwise), OFF.
#                  The GPU backend is one per build: while the CUDA backend is built, AUTO is off
#                  and ON is an error (build with -DPAGEDLLM_CUDA=OFF).
#   PAGEDLLM_HIP_ARCHS = AMD GPU targets (default "gfx90a;gfx942": MI200 and MI300). Wavefront-64
#                  (CDNA) targets only. gfx942 needs the clang of ROCm 6 (Debian 12's hipcc, ROCm
#                  5.2 / clang 15, knows gfx90a but not gfx942).
# Plain hipcc through add_custom_command (hip/CMakeLists.txt), not CMake's HIP language: CMake
# 3.25's HIP language fails on Debian's ROCm layout (see /work/shared/reference/toolchain.md §4).
# Result: PAGEDLLM_WITH_HIP (ON/OFF) and, when ON, PAGEDLLM_HIPCC (the compiler) and
# PAGEDLLM_HIP_RUNTIME_LIBRARY (libamdhip64).
set(PAGEDLLM_HIP "AUTO" CACHE STRING "Build the HIP backend: AUTO, ON or OFF")
set_property(CACHE PAGEDLLM_HIP PROPERTY STRINGS AUTO ON OFF)
set(PAGEDLLM_HIP_ARCHS "gfx90a;gfx942" CACHE STRING "AMD GPU targets of the HIP backend (--offload-arch)")

set(PAGEDLLM_WITH_HIP OFF)
string(TOUPPER "${PAGEDLLM_HIP}" _pagedllm_hip_mode)

# Off with a status line under AUTO; a configure error naming the fix under ON.
macro(_pagedllm_hip_unavailable why fix)
  if(_pagedllm_hip_mode STREQUAL "ON")
    message(FATAL_ERROR "pagedllm: PAGEDLLM_HIP=ON but ${why}. ${fix}")
  endif()
  message(STATUS "pagedllm: HIP backend off (${why})")
  return()
endmacro()

if(_pagedllm_hip_mode STREQUAL "OFF")
  message(STATUS "pagedllm: HIP backend off (PAGEDLLM_HIP=OFF)")
  return()
endif()
if(NOT _pagedllm_hip_mode MATCHES "^(AUTO|ON)$")
  message(FATAL_ERROR "pagedllm: PAGEDLLM_HIP must be AUTO, ON or OFF (got '${PAGEDLLM_HIP}')")
endif()
if(PAGEDLLM_WITH_CUDA)
  _pagedllm_hip_unavailable("the CUDA backend is built and a build has one GPU backend"
                            "Build the HIP backend with -DPAGEDLLM_CUDA=OFF -DPAGEDLLM_HIP=ON.")
endif()

set(_pagedllm_rocm_roots)
foreach(_root IN ITEMS "$ENV{ROCM_PATH}" "$ENV{HIP_PATH}" /opt/rocm)
  if(_root)
    list(APPEND _pagedllm_rocm_roots "${_root}")
  endif()
endforeach()
find_program(PAGEDLLM_HIPCC hipcc HINTS ${_pagedllm_rocm_roots} PATH_SUFFIXES bin)
if(NOT PAGEDLLM_HIPCC OR NOT EXISTS "${PAGEDLLM_HIPCC}")
  _pagedllm_hip_unavailable("no hipcc was found"
                            "Install ROCm (or Debian's hipcc package), put hipcc on PATH or set "
                            "ROCM_PATH, or build with PAGEDLLM_HIP=OFF.")
endif()
find_library(PAGEDLLM_HIP_RUNTIME_LIBRARY amdhip64 HINTS ${_pagedllm_rocm_roots} PATH_SUFFIXES lib)
if(NOT PAGEDLLM_HIP_RUNTIME_LIBRARY)
  _pagedllm_hip_unavailable("hipcc is at ${PAGEDLLM_HIPCC} but the HIP runtime (libamdhip64) was not found"
                            "Install the HIP runtime development files (ROCm hip-dev, Debian libamdhip64-dev).")
endif()

# One probe compile per (compiler, archs), remembered: hipcc for HIP_PLATFORM=amd must accept
# every arch.
set(_probe_key "${PAGEDLLM_HIPCC}|${PAGEDLLM_HIP_ARCHS}")
if(NOT _probe_key STREQUAL PAGEDLLM_HIP_PROBE_KEY)
  set(_probe_dir "${CMAKE_BINARY_DIR}/pagedllm_hip_probe")
  file(WRITE "${_probe_dir}/probe.hip" "#include <hip/hip_runtime.h>\n__global__ void pagedllm_probe(int* p) { p[threadIdx.x] = 1; }\n")
  set(_probe_flags)
  foreach(_arch IN LISTS PAGEDLLM_HIP_ARCHS)
    list(APPEND _probe_flags "--offload-arch=${_arch}")
  endforeach()
  execute_process(
    COMMAND ${CMAKE_COMMAND} -E env HIP_PLATFORM=amd "${PAGEDLLM_HIPCC}" ${_probe_flags} -x hip -c probe.hip -o probe.o
    WORKING_DIRECTORY "${_probe_dir}" RESULT_VARIABLE _probe_rc OUTPUT_VARIABLE _probe_out ERROR_VARIABLE _probe_out)
  string(STRIP "${_probe_out}" _probe_out)
  set(PAGEDLLM_HIP_PROBE_KEY "${_probe_key}" CACHE INTERNAL "hipcc and archs of the last probe")
  set(PAGEDLLM_HIP_PROBE_ERROR "${_probe_out}" CACHE INTERNAL "the probe's error, empty when it compiled")
  if(_probe_rc EQUAL 0)
    set(PAGEDLLM_HIP_PROBE_ERROR "" CACHE INTERNAL "the probe's error, empty when it compiled")
  elseif(NOT _probe_out)
    set(PAGEDLLM_HIP_PROBE_ERROR "exit code ${_probe_rc}" CACHE INTERNAL "the probe's error, empty when it compiled")
  endif()
endif()
if(PAGEDLLM_HIP_PROBE_ERROR)
  _pagedllm_hip_unavailable(
    "${PAGEDLLM_HIPCC} cannot compile for HIP_PLATFORM=amd, archs '${PAGEDLLM_HIP_ARCHS}': ${PAGEDLLM_HIP_PROBE_ERROR}"
    "gfx942 needs ROCm 6's hipcc; with an older one (Debian 12: ROCm 5.2) pass -DPAGEDLLM_HIP_ARCHS=gfx90a.")
endif()

execute_process(COMMAND ${CMAKE_COMMAND} -E env HIP_PLATFORM=amd "${PAGEDLLM_HIPCC}" --version
                OUTPUT_VARIABLE _hip_version ERROR_QUIET)
string(REGEX MATCH "HIP version: [^\n]*" _hip_version "${_hip_version}")
set(PAGEDLLM_WITH_HIP ON)
message(STATUS "pagedllm: HIP backend on (${PAGEDLLM_HIPCC}, ${_hip_version}, archs ${PAGEDLLM_HIP_ARCHS})")
