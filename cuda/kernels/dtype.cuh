// Activation element types on the GPU: conversions through float and dispatch from DType.
// Kernels compute in float and store in the tensor's type (float32, bfloat16 or float16).
#pragma once

#include "backend/tensor.h"
#include "gpu_compat.cuh"

namespace pagedllm {

template <typename T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_float<gpu_bfloat16>(gpu_bfloat16 v) { return gpu_bfloat16_to_float(v); }
template <>
__device__ __forceinline__ float to_float<gpu_half>(gpu_half v) { return gpu_half_to_float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ gpu_bfloat16 from_float<gpu_bfloat16>(float v) { return gpu_float_to_bfloat16(v); }
template <>
__device__ __forceinline__ gpu_half from_float<gpu_half>(float v) { return gpu_float_to_half(v); }

}  // namespace pagedllm

// Runs the body with `T` bound to the element type of a float DType; other dtypes are bugs.
#define PAGEDLLM_DISPATCH_FLOAT(dtype, T, ...)                                              \
  do {                                                                                      \
    switch (dtype) {                                                                        \
      case ::pagedllm::DType::kFloat32: { using T = float; __VA_ARGS__; break; }            \
      case ::pagedllm::DType::kBFloat16: { using T = ::pagedllm::gpu_bfloat16; __VA_ARGS__; break; } \
      case ::pagedllm::DType::kFloat16: { using T = ::pagedllm::gpu_half; __VA_ARGS__; break; } \
      default: PAGEDLLM_CHECK(false, "no GPU kernel for dtype " << ::pagedllm::dtype_name(dtype)); \
    }                                                                                       \
  } while (0)
