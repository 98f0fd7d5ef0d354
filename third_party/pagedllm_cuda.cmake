# Decides whether the CUDA backend is built and sets it up.
#   PAGEDLLM_CUDA = AUTO (default: build when nvcc is found), ON (fail loudly without nvcc), OFF.
#   PAGEDLLM_CUDA_ARCHS = CMake CUDA architectures (default "80;90a": A100 and H100/H200).
#   cuBLAS headers: see pagedllm_cublas.cmake (none found: AUTO builds without CUDA, ON fails).
# Result: PAGEDLLM_WITH_CUDA (ON/OFF) and, when ON, the CUDA language enabled, CUDA::cudart_static
# and PAGEDLLM_CUBLAS_INCLUDE_DIRS.
set(PAGEDLLM_CUDA "AUTO" CACHE STRING "Build the CUDA backend: AUTO, ON or OFF")
set_property(CACHE PAGEDLLM_CUDA PROPERTY STRINGS AUTO ON OFF)
set(PAGEDLLM_CUDA_ARCHS "80;90a" CACHE STRING "CUDA architectures of the CUDA backend")

set(PAGEDLLM_WITH_CUDA OFF)
string(TOUPPER "${PAGEDLLM_CUDA}" _pagedllm_cuda_mode)
if(_pagedllm_cuda_mode STREQUAL "OFF")
  message(STATUS "pagedllm: CUDA backend off (PAGEDLLM_CUDA=OFF)")
  return()
endif()
string(TOUPPER "${PAGEDLLM_HIP}" _pagedllm_hip_request)
if(_pagedllm_cuda_mode STREQUAL "AUTO" AND _pagedllm_hip_request STREQUAL "ON")
  message(STATUS "pagedllm: CUDA backend off (PAGEDLLM_HIP=ON: one GPU backend per build)")
  return()
endif()

include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  if(_pagedllm_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR "pagedllm: PAGEDLLM_CUDA=ON but no CUDA compiler (nvcc) was found. "
                        "Put nvcc on PATH or set CMAKE_CUDA_COMPILER, or build with PAGEDLLM_CUDA=OFF.")
  endif()
  message(STATUS "pagedllm: CUDA backend off (no nvcc found)")
  return()
endif()

# Lets the build report that a CUDA backend was expected (build_info(): a CUDA build skipped for a
# missing dependency is then caught by the test suite).
add_compile_definitions(PAGEDLLM_CUDA_COMPILER_FOUND=1)

if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "${PAGEDLLM_CUDA_ARCHS}")
endif()
enable_language(CUDA)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
find_package(CUDAToolkit REQUIRED)
include(pagedllm_cublas)
if(NOT PAGEDLLM_CUBLAS_FOUND)
  if(_pagedllm_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR "pagedllm: PAGEDLLM_CUDA=ON but ${PAGEDLLM_CUBLAS_NOT_FOUND_MESSAGE}.")
  endif()
  message(WARNING "pagedllm: building without the CUDA backend: ${PAGEDLLM_CUBLAS_NOT_FOUND_MESSAGE}.")
  return()
endif()
set(PAGEDLLM_WITH_CUDA ON)
message(STATUS "pagedllm: CUDA backend on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, archs ${CMAKE_CUDA_ARCHITECTURES})")
