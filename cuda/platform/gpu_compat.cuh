// The CUDA side of the GPU compat layer (DESIGN.md rule 6). Kernel and backend sources in cuda/
// use only the gpu* names below; hip/platform/gpu_compat.cuh defines the same names for HIP, so
// every source is written once and built for both platforms. Nothing else may test the platform.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "util/check.h"

#define PAGEDLLM_GPU_PLATFORM_NAME "cuda"
// Threads per warp (a HIP wavefront is 64 on CDNA).
#define PAGEDLLM_WARP_SIZE 32

namespace pagedllm {

using gpu_bfloat16 = __nv_bfloat16;
using gpu_half = __half;

using gpuError_t = cudaError_t;
using gpuStream_t = cudaStream_t;
using gpuEvent_t = cudaEvent_t;
using gpuGraph_t = cudaGraph_t;
using gpuGraphExec_t = cudaGraphExec_t;
using gpuDeviceProp_t = cudaDeviceProp;
using gpuMemPool_t = cudaMemPool_t;

constexpr gpuError_t gpuSuccess = cudaSuccess;
constexpr gpuError_t gpuErrorMemoryAllocation = cudaErrorMemoryAllocation;
constexpr auto gpuMemcpyHostToDevice = cudaMemcpyHostToDevice;
constexpr auto gpuMemcpyDeviceToHost = cudaMemcpyDeviceToHost;
constexpr auto gpuMemcpyDeviceToDevice = cudaMemcpyDeviceToDevice;
constexpr auto gpuStreamNonBlocking = cudaStreamNonBlocking;
constexpr auto gpuStreamCaptureModeThreadLocal = cudaStreamCaptureModeThreadLocal;
constexpr auto gpuStreamCaptureModeGlobal = cudaStreamCaptureModeGlobal;
constexpr auto gpuEventDisableTiming = cudaEventDisableTiming;
constexpr auto gpuHostAllocDefault = cudaHostAllocDefault;

inline const char* gpuGetErrorString(gpuError_t e) { return cudaGetErrorString(e); }
inline gpuError_t gpuGetLastError() { return cudaGetLastError(); }
inline gpuError_t gpuGetDeviceCount(int* n) { return cudaGetDeviceCount(n); }
inline gpuError_t gpuSetDevice(int d) { return cudaSetDevice(d); }
inline gpuError_t gpuGetDevice(int* d) { return cudaGetDevice(d); }
inline gpuError_t gpuGetDeviceProperties(gpuDeviceProp_t* p, int d) { return cudaGetDeviceProperties(p, d); }
inline gpuError_t gpuDeviceGetAttribute(int* v, cudaDeviceAttr a, int d) { return cudaDeviceGetAttribute(v, a, d); }
inline gpuError_t gpuMemGetInfo(size_t* free_bytes, size_t* total_bytes) { return cudaMemGetInfo(free_bytes, total_bytes); }
inline gpuError_t gpuMalloc(void** p, size_t n) { return cudaMalloc(p, n); }
inline gpuError_t gpuFree(void* p) { return cudaFree(p); }
inline gpuError_t gpuMallocHost(void** p, size_t n) { return cudaMallocHost(p, n); }
inline gpuError_t gpuFreeHost(void* p) { return cudaFreeHost(p); }
inline gpuError_t gpuMemsetAsync(void* p, int v, size_t n, gpuStream_t s) { return cudaMemsetAsync(p, v, n, s); }
inline gpuError_t gpuMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind k, gpuStream_t st) {
  return cudaMemcpyAsync(d, s, n, k, st);
}
inline gpuError_t gpuMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind k) { return cudaMemcpy(d, s, n, k); }
inline gpuError_t gpuStreamCreateWithFlags(gpuStream_t* s, unsigned f) { return cudaStreamCreateWithFlags(s, f); }
inline gpuError_t gpuStreamDestroy(gpuStream_t s) { return cudaStreamDestroy(s); }
inline gpuError_t gpuStreamSynchronize(gpuStream_t s) { return cudaStreamSynchronize(s); }
inline gpuError_t gpuStreamWaitEvent(gpuStream_t s, gpuEvent_t e) { return cudaStreamWaitEvent(s, e, 0); }
inline gpuError_t gpuEventCreateWithFlags(gpuEvent_t* e, unsigned f) { return cudaEventCreateWithFlags(e, f); }
inline gpuError_t gpuEventDestroy(gpuEvent_t e) { return cudaEventDestroy(e); }
inline gpuError_t gpuEventRecord(gpuEvent_t e, gpuStream_t s) { return cudaEventRecord(e, s); }
inline gpuError_t gpuEventSynchronize(gpuEvent_t e) { return cudaEventSynchronize(e); }
inline gpuError_t gpuEventQuery(gpuEvent_t e) { return cudaEventQuery(e); }
inline gpuError_t gpuEventElapsedTime(float* ms, gpuEvent_t a, gpuEvent_t b) { return cudaEventElapsedTime(ms, a, b); }
inline gpuError_t gpuStreamBeginCapture(gpuStream_t s, cudaStreamCaptureMode m) { return cudaStreamBeginCapture(s, m); }
inline gpuError_t gpuStreamEndCapture(gpuStream_t s, gpuGraph_t* g) { return cudaStreamEndCapture(s, g); }
inline gpuError_t gpuGraphInstantiate(gpuGraphExec_t* e, gpuGraph_t g) { return cudaGraphInstantiate(e, g, 0); }
inline gpuError_t gpuGraphLaunch(gpuGraphExec_t e, gpuStream_t s) { return cudaGraphLaunch(e, s); }
inline gpuError_t gpuGraphDestroy(gpuGraph_t g) { return cudaGraphDestroy(g); }
inline gpuError_t gpuGraphExecDestroy(gpuGraphExec_t e) { return cudaGraphExecDestroy(e); }
inline gpuError_t gpuDeviceSynchronize() { return cudaDeviceSynchronize(); }
// True when work enqueued on s is being captured into a graph.
inline bool gpu_stream_is_capturing(gpuStream_t s) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(s, &status) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return status != cudaStreamCaptureStatusNone;
}

// True when p is page-locked host memory (gpuMallocHost or registered): copies from it are
// truly asynchronous, while copies from pageable memory have consumed it when they return.
inline bool gpu_is_page_locked(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeHost;
}

// 16-bit float conversions, round to nearest even from float.
__host__ __device__ inline float gpu_bfloat16_to_float(gpu_bfloat16 v) { return __bfloat162float(v); }
__host__ __device__ inline gpu_bfloat16 gpu_float_to_bfloat16(float v) { return __float2bfloat16_rn(v); }
__host__ __device__ inline float gpu_half_to_float(gpu_half v) { return __half2float(v); }
__host__ __device__ inline gpu_half gpu_float_to_half(float v) { return __float2half_rn(v); }

// Warp-level primitives over the full warp (lane mask of all PAGEDLLM_WARP_SIZE lanes).
template <typename T>
__device__ __forceinline__ T gpu_shfl_xor(T v, int lane_mask) {
  return __shfl_xor_sync(0xffffffffu, v, lane_mask, PAGEDLLM_WARP_SIZE);
}
template <typename T>
__device__ __forceinline__ T gpu_shfl(T v, int src_lane) {
  return __shfl_sync(0xffffffffu, v, src_lane, PAGEDLLM_WARP_SIZE);
}

}  // namespace pagedllm

// Fails with an InternalError naming the call and the runtime's message (util/check.h).
#define PAGEDLLM_GPU_CHECK(call)                                                          \
  do {                                                                                    \
    ::pagedllm::gpuError_t pagedllm_gpu_err_ = (call);                                    \
    PAGEDLLM_CHECK(pagedllm_gpu_err_ == ::pagedllm::gpuSuccess,                           \
                   #call << " failed: " << ::pagedllm::gpuGetErrorString(pagedllm_gpu_err_)); \
  } while (0)
