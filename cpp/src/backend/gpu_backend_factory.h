// The GPU backend's entry point for create_backend (backend.cc), declared in plain C++ so that
// host code never includes GPU headers. Defined in cuda/gpu_backend.cu (the HIP build compiles
// the same source, and "cuda" device strings then name HIP devices, as in PyTorch on ROCm); only
// included when the build has a GPU backend (PAGEDLLM_WITH_CUDA or PAGEDLLM_WITH_HIP).
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"

namespace pagedllm {

// The backend of GPU `device_index` (>= 0). Returns nullptr with *error set when there is no
// GPU or no driver (the runtime's message), the index is out of range, the BLAS library is
// missing, or options.attention_backend is not available in this build.
std::unique_ptr<Backend> create_gpu_backend(int device_index, const BackendOptions& options, std::string* error);

}  // namespace pagedllm
