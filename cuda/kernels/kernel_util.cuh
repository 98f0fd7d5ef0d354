// Building blocks shared by the small memory-bound kernels: aligned vectors for wide loads,
// warp and block sums, a NaN to mark rows with invalid indices, and launch-shape helpers.
// Written against gpu_compat.cuh only (warp size from PAGEDLLM_WARP_SIZE), so HIP builds it too.
#pragma once

#include <cstdint>

#include "backend/tensor.h"
#include "gpu_compat.cuh"

namespace pagedllm {

// VEC consecutive elements loaded or stored with one aligned access (VEC * sizeof(T) bytes).
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) AlignedVec {
  T v[VEC];
};

template <typename T, int VEC>
__device__ __forceinline__ AlignedVec<T, VEC> load_vec(const T* p) {
  return *reinterpret_cast<const AlignedVec<T, VEC>*>(p);
}

template <typename T, int VEC>
__device__ __forceinline__ void store_vec(T* p, const AlignedVec<T, VEC>& v) {
  *reinterpret_cast<AlignedVec<T, VEC>*>(p) = v;
}

__device__ __forceinline__ float quiet_nan() { return __int_as_float(0x7fc00000); }

// Sum over the warp; every lane gets the result.
__device__ __forceinline__ float warp_sum(float v) {
  for (int mask = PAGEDLLM_WARP_SIZE / 2; mask > 0; mask >>= 1) v += gpu_shfl_xor(v, mask);
  return v;
}

// Sum over the block; every thread gets the result. Precondition: blockDim.x is a multiple of
// PAGEDLLM_WARP_SIZE and at most 1024; every thread of the block calls it.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float warp_sums[1024 / PAGEDLLM_WARP_SIZE];
  __shared__ float total;
  const int lane = static_cast<int>(threadIdx.x) % PAGEDLLM_WARP_SIZE;
  const int warp = static_cast<int>(threadIdx.x) / PAGEDLLM_WARP_SIZE;
  const int num_warps = static_cast<int>(blockDim.x) / PAGEDLLM_WARP_SIZE;
  v = warp_sum(v);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float s = lane < num_warps ? warp_sums[lane] : 0.0f;
    s = warp_sum(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

// Threads for `work` independent items per block: a multiple of the warp size in
// [PAGEDLLM_WARP_SIZE, max_threads] (max_threads a multiple of the warp size).
inline int block_threads_for(int64_t work, int max_threads = 1024) {
  const int64_t rounded = (work + PAGEDLLM_WARP_SIZE - 1) / PAGEDLLM_WARP_SIZE * PAGEDLLM_WARP_SIZE;
  if (rounded < PAGEDLLM_WARP_SIZE) return PAGEDLLM_WARP_SIZE;
  return static_cast<int>(rounded < max_threads ? rounded : max_threads);
}

// The largest grid.x the launchers use (the hardware limit is 2^31 - 1).
constexpr int64_t kMaxGridX = 2147483647;

// True when p is a multiple of `bytes` (a power of two).
inline bool is_aligned(const void* p, int64_t bytes) {
  return (reinterpret_cast<uintptr_t>(p) & static_cast<uintptr_t>(bytes - 1)) == 0;
}

// True when t can be read or written in chunks of `vec` elements with aligned accesses: unit
// last-dim stride, last dim a multiple of vec, data aligned to vec elements and every other
// stride a multiple of vec (so every row starts aligned). An empty tensor (no data) qualifies.
inline bool vectorizable(const Tensor& t, int vec) {
  if (t.data == nullptr) return true;
  const int last = t.ndim - 1;
  if (t.ndim < 1 || t.stride[last] != 1 || t.shape[last] % vec != 0) return false;
  if (!is_aligned(t.data, vec * static_cast<int64_t>(dtype_size(t.dtype)))) return false;
  for (int d = 0; d < last; ++d)
    if (t.shape[d] > 1 && t.stride[d] % vec != 0) return false;
  return true;
}

// Elements per 16-byte access for the wider of two element types.
template <typename A, typename B>
constexpr int vec_for() {
  return static_cast<int>(16 / (sizeof(A) > sizeof(B) ? sizeof(A) : sizeof(B)));
}

}  // namespace pagedllm
