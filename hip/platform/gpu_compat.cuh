// The HIP side of the GPU compat layer (DESIGN.md rule 6): the same gpu* names as
// cuda/platform/gpu_compat.cuh, mapped to HIP on AMD GPUs. The HIP build puts hip/platform/ first
// on the include path, so every shared source in cuda/ that includes "gpu_compat.cuh" gets this
// header. Invariant: every name the CUDA header defines is defined here with the same meaning
// (tests/python/test_gpu_compat.py checks the names); nothing outside the two headers tests the
// platform.
//
// Wavefronts: CDNA GPUs (gfx90a MI200, gfx942 MI300) run 64 lanes per wavefront, so
// PAGEDLLM_WARP_SIZE is 64 and a full-wavefront lane mask is 64 bits wide. Warp reductions
// must use PAGEDLLM_WARP_SIZE (never a literal 32), and a block that uses them must have a
// multiple of PAGEDLLM_WARP_SIZE threads. RDNA (wave32) targets are not supported.
#pragma once

#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>
#if __has_include(<hip/hip_bf16.h>)
#include <hip/hip_bf16.h>
#define PAGEDLLM_HIP_HAS_BF16_HEADER 1
#else
#include <hip/hip_bfloat16.h>
#define PAGEDLLM_HIP_HAS_BF16_HEADER 0
#endif

#include <cstdint>

#include "util/check.h"

#if !defined(__HIP_PLATFORM_AMD__)
#error "hip/platform/gpu_compat.cuh is for HIP on AMD GPUs: compile with HIP_PLATFORM=amd hipcc"
#endif

#define PAGEDLLM_GPU_PLATFORM_NAME "hip"
// Lanes per wavefront on CDNA.
#define PAGEDLLM_WARP_SIZE 64

#if defined(__AMDGCN_WAVEFRONT_SIZE) && __AMDGCN_WAVEFRONT_SIZE != PAGEDLLM_WARP_SIZE
#error "pagedllm's HIP kernels assume 64-lane wavefronts (CDNA: gfx90a, gfx942); this target is wave32"
#endif

namespace pagedllm {

// ROCm >= 5.7 has CUDA-like __hip_bfloat16 (hip_bf16.h); older ROCm (Debian's 5.2) only the
// hip_bfloat16 struct. Both are 2-byte bf16 storage with round-to-nearest-even from float.
#if PAGEDLLM_HIP_HAS_BF16_HEADER
using gpu_bfloat16 = __hip_bfloat16;
#else
using gpu_bfloat16 = hip_bfloat16;
#endif
using gpu_half = __half;
static_assert(sizeof(gpu_bfloat16) == 2 && sizeof(gpu_half) == 2, "16-bit float storage");

using gpuError_t = hipError_t;
using gpuStream_t = hipStream_t;
using gpuEvent_t = hipEvent_t;
using gpuGraph_t = hipGraph_t;
using gpuGraphExec_t = hipGraphExec_t;
using gpuDeviceProp_t = hipDeviceProp_t;
using gpuMemPool_t = hipMemPool_t;

constexpr gpuError_t gpuSuccess = hipSuccess;
constexpr gpuError_t gpuErrorMemoryAllocation = hipErrorOutOfMemory;
constexpr auto gpuMemcpyHostToDevice = hipMemcpyHostToDevice;
constexpr auto gpuMemcpyDeviceToHost = hipMemcpyDeviceToHost;
constexpr auto gpuMemcpyDeviceToDevice = hipMemcpyDeviceToDevice;
constexpr unsigned gpuStreamNonBlocking = hipStreamNonBlocking;
constexpr auto gpuStreamCaptureModeThreadLocal = hipStreamCaptureModeThreadLocal;
constexpr auto gpuStreamCaptureModeGlobal = hipStreamCaptureModeGlobal;
constexpr unsigned gpuEventDisableTiming = hipEventDisableTiming;
constexpr unsigned gpuHostAllocDefault = hipHostMallocDefault;

inline const char* gpuGetErrorString(gpuError_t e) { return hipGetErrorString(e); }
inline gpuError_t gpuGetLastError() { return hipGetLastError(); }
inline gpuError_t gpuGetDeviceCount(int* n) { return hipGetDeviceCount(n); }
inline gpuError_t gpuSetDevice(int d) { return hipSetDevice(d); }
inline gpuError_t gpuGetDevice(int* d) { return hipGetDevice(d); }
inline gpuError_t gpuGetDeviceProperties(gpuDeviceProp_t* p, int d) { return hipGetDeviceProperties(p, d); }
inline gpuError_t gpuDeviceGetAttribute(int* v, hipDeviceAttribute_t a, int d) {
  return hipDeviceGetAttribute(v, a, d);
}
inline gpuError_t gpuMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  return hipMemGetInfo(free_bytes, total_bytes);
}
inline gpuError_t gpuMalloc(void** p, size_t n) { return hipMalloc(p, n); }
inline gpuError_t gpuFree(void* p) { return hipFree(p); }
// Page-locked host memory (hipMallocHost is deprecated in favour of hipHostMalloc).
inline gpuError_t gpuMallocHost(void** p, size_t n) { return hipHostMalloc(p, n, hipHostMallocDefault); }
inline gpuError_t gpuFreeHost(void* p) { return hipHostFree(p); }
inline gpuError_t gpuMemsetAsync(void* p, int v, size_t n, gpuStream_t s) { return hipMemsetAsync(p, v, n, s); }
inline gpuError_t gpuMemcpyAsync(void* d, const void* s, size_t n, hipMemcpyKind k, gpuStream_t st) {
  return hipMemcpyAsync(d, s, n, k, st);
}
inline gpuError_t gpuMemcpy(void* d, const void* s, size_t n, hipMemcpyKind k) { return hipMemcpy(d, s, n, k); }
inline gpuError_t gpuStreamCreateWithFlags(gpuStream_t* s, unsigned f) { return hipStreamCreateWithFlags(s, f); }
inline gpuError_t gpuStreamDestroy(gpuStream_t s) { return hipStreamDestroy(s); }
inline gpuError_t gpuStreamSynchronize(gpuStream_t s) { return hipStreamSynchronize(s); }
inline gpuError_t gpuStreamWaitEvent(gpuStream_t s, gpuEvent_t e) { return hipStreamWaitEvent(s, e, 0); }
inline gpuError_t gpuEventCreateWithFlags(gpuEvent_t* e, unsigned f) { return hipEventCreateWithFlags(e, f); }
inline gpuError_t gpuEventDestroy(gpuEvent_t e) { return hipEventDestroy(e); }
inline gpuError_t gpuEventRecord(gpuEvent_t e, gpuStream_t s) { return hipEventRecord(e, s); }
inline gpuError_t gpuEventSynchronize(gpuEvent_t e) { return hipEventSynchronize(e); }
inline gpuError_t gpuEventQuery(gpuEvent_t e) { return hipEventQuery(e); }
inline gpuError_t gpuEventElapsedTime(float* ms, gpuEvent_t a, gpuEvent_t b) { return hipEventElapsedTime(ms, a, b); }
inline gpuError_t gpuStreamBeginCapture(gpuStream_t s, hipStreamCaptureMode m) { return hipStreamBeginCapture(s, m); }
inline gpuError_t gpuStreamEndCapture(gpuStream_t s, gpuGraph_t* g) { return hipStreamEndCapture(s, g); }
inline gpuError_t gpuGraphInstantiate(gpuGraphExec_t* e, gpuGraph_t g) {
  return hipGraphInstantiate(e, g, nullptr, nullptr, 0);
}
inline gpuError_t gpuGraphLaunch(gpuGraphExec_t e, gpuStream_t s) { return hipGraphLaunch(e, s); }
inline gpuError_t gpuGraphDestroy(gpuGraph_t g) { return hipGraphDestroy(g); }
inline gpuError_t gpuGraphExecDestroy(gpuGraphExec_t e) { return hipGraphExecDestroy(e); }
inline gpuError_t gpuDeviceSynchronize() { return hipDeviceSynchronize(); }
// True when work enqueued on s is being captured into a graph.
inline bool gpu_stream_is_capturing(gpuStream_t s) {
  hipStreamCaptureStatus status = hipStreamCaptureStatusNone;
  if (hipStreamIsCapturing(s, &status) != hipSuccess) {
    (void)hipGetLastError();
    return false;
  }
  return status != hipStreamCaptureStatusNone;
}
// True when p is page-locked host memory (gpuMallocHost or registered). HIP fails the query for
// pageable memory (CUDA reports it as unregistered); both give false. ROCm 6 renamed the field.
inline bool gpu_is_page_locked(const void* p) {
  hipPointerAttribute_t a{};
  if (hipPointerGetAttributes(&a, p) != hipSuccess) {
    (void)hipGetLastError();
    return false;
  }
#if HIP_VERSION_MAJOR >= 6
  return a.type == hipMemoryTypeHost;
#else
  return a.memoryType == hipMemoryTypeHost;
#endif
}

// 16-bit float conversions, round to nearest even from float. ROCm < 5.7's hip_bfloat16 is a
// plain struct for host compilers, so that path works on the bits.
#if PAGEDLLM_HIP_HAS_BF16_HEADER
__host__ __device__ inline float gpu_bfloat16_to_float(gpu_bfloat16 v) { return __bfloat162float(v); }
__host__ __device__ inline gpu_bfloat16 gpu_float_to_bfloat16(float v) { return __float2bfloat16(v); }
#else
__host__ __device__ inline float gpu_bfloat16_to_float(gpu_bfloat16 v) {
  const uint32_t bits = static_cast<uint32_t>(v.data) << 16;
  float f;
  __builtin_memcpy(&f, &bits, sizeof(f));
  return f;
}
__host__ __device__ inline gpu_bfloat16 gpu_float_to_bfloat16(float v) {
  uint32_t bits;
  __builtin_memcpy(&bits, &v, sizeof(bits));
  gpu_bfloat16 r;
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    r.data = static_cast<uint16_t>((bits >> 16) | 0x0040u);  // NaN stays a quiet NaN
  } else {
    r.data = static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
  }
  return r;
}
#endif
__host__ __device__ inline float gpu_half_to_float(gpu_half v) { return __half2float(v); }
__host__ __device__ inline gpu_half gpu_float_to_half(float v) { return __float2half_rn(v); }

// Wavefront-level exchange over all PAGEDLLM_WARP_SIZE lanes (HIP's shuffles take no lane mask;
// every lane of the wavefront must be active). T: a 4- or 8-byte arithmetic type.
template <typename T>
__device__ __forceinline__ T gpu_shfl_xor(T v, int lane_mask) {
  return __shfl_xor(v, lane_mask, PAGEDLLM_WARP_SIZE);
}
template <typename T>
__device__ __forceinline__ T gpu_shfl(T v, int src_lane) {
  return __shfl(v, src_lane, PAGEDLLM_WARP_SIZE);
}

}  // namespace pagedllm

// Fails with an InternalError naming the call and the runtime's message (util/check.h).
#define PAGEDLLM_GPU_CHECK(call)                                                          \
  do {                                                                                    \
    ::pagedllm::gpuError_t pagedllm_gpu_err_ = (call);                                    \
    PAGEDLLM_CHECK(pagedllm_gpu_err_ == ::pagedllm::gpuSuccess,                           \
                   #call << " failed: " << ::pagedllm::gpuGetErrorString(pagedllm_gpu_err_)); \
  } while (0)
