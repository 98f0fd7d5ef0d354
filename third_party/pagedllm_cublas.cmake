# Finds the cuBLAS headers the CUDA backend compiles against. The library itself is dlopen'ed at
# run time (cuda/cublas_library.cu), so a build needs only headers and the module imports on
# machines without cuBLAS. Included by pagedllm_cuda.cmake after find_package(CUDAToolkit).
#
# Where the headers come from, first hit wins:
#   1. PAGEDLLM_CUBLAS_INCLUDE_DIR (cache variable: a folder holding cublas_v2.h);
#   2. the CUDA toolkit (CUDAToolkit_INCLUDE_DIRS);
#   3. an installed nvidia-cublas wheel (Python package nvidia.cu13, found through
#      Python_EXECUTABLE);
#   4. the nvidia-cublas==${PAGEDLLM_CUBLAS_WHEEL_VERSION} wheel, downloaded once into
#      PAGEDLLM_DEPS_CACHE keeping only nvidia/cu13/include (pagedllm_wheel_fetch.cmake).
# Result: PAGEDLLM_CUBLAS_FOUND; when ON, PAGEDLLM_CUBLAS_INCLUDE_DIRS (a build-tree folder with
# copies of the cuBLAS headers only, so no other header of a wheel can shadow the toolkit's),
# PAGEDLLM_CUBLAS_SOURCE (which of the four) and PAGEDLLM_CUBLAS_WHEEL_LIB_DIR (where the
# wheel puts the library, relative to site-packages: the run-time loader's fallback).
include(pagedllm_wheel_fetch)

set(PAGEDLLM_CUBLAS_INCLUDE_DIR "" CACHE PATH "Folder holding cublas_v2.h (default: search)")
set(PAGEDLLM_CUBLAS_WHEEL_VERSION "13.0.2.14" CACHE STRING
    "nvidia-cublas wheel whose headers are downloaded when no other cuBLAS headers are found")

set(PAGEDLLM_CUBLAS_FOUND OFF)
set(PAGEDLLM_CUBLAS_WHEEL_LIB_DIR "nvidia/cu${CUDAToolkit_VERSION_MAJOR}/lib")
set(_pagedllm_cublas_dir "")
set(_pagedllm_cublas_tried "")

if(PAGEDLLM_CUBLAS_INCLUDE_DIR)
  if(EXISTS "${PAGEDLLM_CUBLAS_INCLUDE_DIR}/cublas_v2.h")
    set(_pagedllm_cublas_dir "${PAGEDLLM_CUBLAS_INCLUDE_DIR}")
    set(PAGEDLLM_CUBLAS_SOURCE "PAGEDLLM_CUBLAS_INCLUDE_DIR")
  else()
    message(FATAL_ERROR "pagedllm: PAGEDLLM_CUBLAS_INCLUDE_DIR=${PAGEDLLM_CUBLAS_INCLUDE_DIR} has no cublas_v2.h")
  endif()
endif()

if(NOT _pagedllm_cublas_dir)
  foreach(_dir IN LISTS CUDAToolkit_INCLUDE_DIRS)
    if(EXISTS "${_dir}/cublas_v2.h")
      set(_pagedllm_cublas_dir "${_dir}")
      set(PAGEDLLM_CUBLAS_SOURCE "the CUDA toolkit")
      break()
    endif()
  endforeach()
  list(APPEND _pagedllm_cublas_tried "the CUDA toolkit (${CUDAToolkit_INCLUDE_DIRS})")
endif()

if(NOT _pagedllm_cublas_dir)
  if(NOT Python_EXECUTABLE)
    find_package(Python COMPONENTS Interpreter QUIET)
  endif()
  if(Python_EXECUTABLE)
    execute_process(
      COMMAND "${Python_EXECUTABLE}" -c
              "import nvidia.cu${CUDAToolkit_VERSION_MAJOR} as m; print(';'.join(m.__path__))"
      RESULT_VARIABLE _rc OUTPUT_VARIABLE _paths ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(_rc EQUAL 0)
      foreach(_dir IN LISTS _paths)
        if(EXISTS "${_dir}/include/cublas_v2.h")
          set(_pagedllm_cublas_dir "${_dir}/include")
          set(PAGEDLLM_CUBLAS_SOURCE "the installed nvidia-cublas wheel")
          break()
        endif()
      endforeach()
    endif()
    list(APPEND _pagedllm_cublas_tried "Python package nvidia.cu${CUDAToolkit_VERSION_MAJOR} of ${Python_EXECUTABLE}")
  endif()
endif()

if(NOT _pagedllm_cublas_dir AND CUDAToolkit_VERSION_MAJOR EQUAL 13)
  pagedllm_fetch_wheel(_pagedllm_cublas_wheel NAME nvidia-cublas VERSION "${PAGEDLLM_CUBLAS_WHEEL_VERSION}"
                       SUBDIRS nvidia/cu13/include)
  if(_pagedllm_cublas_wheel)
    set(_pagedllm_cublas_dir "${_pagedllm_cublas_wheel}/nvidia/cu13/include")
    set(PAGEDLLM_CUBLAS_SOURCE "nvidia-cublas==${PAGEDLLM_CUBLAS_WHEEL_VERSION} headers in ${PAGEDLLM_DEPS_CACHE}")
  else()
    list(APPEND _pagedllm_cublas_tried
         "downloading nvidia-cublas==${PAGEDLLM_CUBLAS_WHEEL_VERSION}: ${_pagedllm_cublas_wheel_ERROR}")
  endif()
endif()

if(_pagedllm_cublas_dir)
  set(PAGEDLLM_CUBLAS_INCLUDE_DIRS "${CMAKE_BINARY_DIR}/pagedllm-cublas/include")
  file(REMOVE_RECURSE "${PAGEDLLM_CUBLAS_INCLUDE_DIRS}")
  file(GLOB _pagedllm_cublas_headers "${_pagedllm_cublas_dir}/cublas*.h")
  file(COPY ${_pagedllm_cublas_headers} DESTINATION "${PAGEDLLM_CUBLAS_INCLUDE_DIRS}")
  set(PAGEDLLM_CUBLAS_FOUND ON)
  message(STATUS "pagedllm: cuBLAS headers from ${PAGEDLLM_CUBLAS_SOURCE} (${_pagedllm_cublas_dir})")
else()
  string(REPLACE ";" "; " _pagedllm_cublas_tried "${_pagedllm_cublas_tried}")
  string(CONCAT PAGEDLLM_CUBLAS_NOT_FOUND_MESSAGE
      "no cuBLAS headers (cublas_v2.h) found; tried ${_pagedllm_cublas_tried}. Install them with "
      "`pip install nvidia-cublas==${PAGEDLLM_CUBLAS_WHEEL_VERSION}` (or a CUDA toolkit with cuBLAS), "
      "or point -DPAGEDLLM_CUBLAS_INCLUDE_DIR=<folder with cublas_v2.h> at them")
endif()
