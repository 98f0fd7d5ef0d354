// CublasLibrary: the cuBLAS entry points pagedllm uses, resolved at run time with dlopen so that
// the build needs only cuBLAS headers and the module imports on machines without cuBLAS.
// CUDA-only (cuBLAS); the HIP build has its hipBLAS twin in hip/.
//
// Search order: the system loader (libcublas.so.<major>: LD_LIBRARY_PATH, the ld.so cache, the
// RUNPATH), then the nvidia-cublas wheel installed next to the binary holding this code
// (<its folder>/../PAGEDLLM_CUBLAS_WHEEL_LIB_DIR, e.g. site-packages/nvidia/cu13/lib for
// site-packages/pagedllm/_core.so). Function pointer types come from the real headers.
// Invariant: the library is loaded once per process and never unloaded; the table is immutable.
#pragma once

#include <cublas_v2.h>

#include <string>

namespace pagedllm {

struct CublasLibrary {
  decltype(&cublasCreate) create = nullptr;
  decltype(&cublasDestroy) destroy = nullptr;
  decltype(&cublasSetStream) set_stream = nullptr;
  decltype(&cublasSetWorkspace) set_workspace = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  decltype(&cublasGetStatusString) status_string = nullptr;
  // cublasGemmEx with a cublasComputeType_t (the header also has a deprecated cudaDataType overload).
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
  std::string path;  // the file that was loaded
};

// The process-wide table; nullptr with *error naming every place tried when cuBLAS is missing.
const CublasLibrary* load_cublas(std::string* error);

}  // namespace pagedllm
