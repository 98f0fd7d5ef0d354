// RocblasLibrary: the rocBLAS entry points the HIP GpuGemm uses, resolved at run time with dlopen
// (the HIP twin of cuda/cublas_library.cuh), so the build needs only rocBLAS headers and the
// module imports where rocBLAS is missing; GpuGemm::create then fails with the reason.
// AMD-only. Function pointer types come from the real header.
//
// Search order: the system loader with the soname found at build time
// (PAGEDLLM_ROCBLAS_SONAME, e.g. librocblas.so.4 for ROCm 6), then librocblas.so, then the file
// found at build time (PAGEDLLM_ROCBLAS_LIBRARY, e.g. /opt/rocm/lib/librocblas.so).
// Invariant: the library is loaded once per process and never unloaded; the table is immutable.
#pragma once

#if __has_include(<rocblas/rocblas.h>)
#include <rocblas/rocblas.h>
#else
#include <rocblas.h>
#endif

#include <string>

namespace pagedllm {

struct RocblasLibrary {
  decltype(&rocblas_create_handle) create_handle = nullptr;
  decltype(&rocblas_destroy_handle) destroy_handle = nullptr;
  decltype(&rocblas_set_stream) set_stream = nullptr;
  decltype(&rocblas_set_workspace) set_workspace = nullptr;
  decltype(&rocblas_status_to_string) status_string = nullptr;
  decltype(&rocblas_gemm_ex) gemm_ex = nullptr;
  std::string path;  // the file that was loaded
};

// The process-wide table; nullptr with *error naming every place tried when rocBLAS is missing.
const RocblasLibrary* load_rocblas(std::string* error);

}  // namespace pagedllm
