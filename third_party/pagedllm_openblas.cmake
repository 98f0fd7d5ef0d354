# Finds OpenBLAS from the scipy-openblas32 wheel (PyPI) and exposes it as pagedllm::blas.
# Order: an explicit OpenBLAS_DIR, then the wheel in the Python environment running the build.
if(TARGET pagedllm::blas)
  return()
endif()

if(NOT OpenBLAS_DIR)
  if(NOT Python_EXECUTABLE)
    find_package(Python COMPONENTS Interpreter REQUIRED)
  endif()
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c
      "import os, scipy_openblas32 as s; print(os.path.join(s.get_lib_dir(), 'cmake', 'openblas'))"
    OUTPUT_VARIABLE _pagedllm_openblas_dir
    OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _pagedllm_openblas_rc)
  if(NOT _pagedllm_openblas_rc EQUAL 0)
    message(FATAL_ERROR "pagedllm needs OpenBLAS from the scipy-openblas32 package: "
                        "`pip install scipy-openblas32` (or pass -DOpenBLAS_DIR=...)")
  endif()
  set(OpenBLAS_DIR "${_pagedllm_openblas_dir}" CACHE PATH "OpenBLASConfig.cmake folder")
endif()

find_package(OpenBLAS CONFIG REQUIRED)
get_target_property(_pagedllm_openblas_lib OpenBLAS::OpenBLAS IMPORTED_LOCATION)
get_filename_component(PAGEDLLM_OPENBLAS_LIB_DIR "${_pagedllm_openblas_lib}" DIRECTORY)
add_library(pagedllm_blas INTERFACE)
target_link_libraries(pagedllm_blas INTERFACE OpenBLAS::OpenBLAS)
# scipy-openblas32 prefixes its symbols (scipy_cblas_sgemm); include "backend/cpu/blas.h".
target_compile_definitions(pagedllm_blas INTERFACE PAGEDLLM_BLAS_SCIPY_PREFIX=1)
add_library(pagedllm::blas ALIAS pagedllm_blas)
message(STATUS "pagedllm: OpenBLAS ${OpenBLAS_VERSION} at ${PAGEDLLM_OPENBLAS_LIB_DIR}")
