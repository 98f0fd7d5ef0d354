// write_kv_cache: one thread block per token; threads stride over the (head, chunk of VEC
// elements) of the token's K and V rows. Cache offsets are int64: a cache may hold more than
// 2^31 elements (num_blocks * num_kv_heads * block_size * D).
#include "kernels/write_kv_cache.cuh"

#include "kernels/dtype.cuh"
#include "kernels/kernel_util.cuh"

namespace pagedllm {
namespace {

template <typename T, int VEC, typename C>
__device__ __forceinline__ void convert_chunk(const T* src, C* dst) {
  const AlignedVec<T, VEC> in = load_vec<T, VEC>(src);
  AlignedVec<C, VEC> o;
#pragma unroll
  for (int j = 0; j < VEC; ++j) o.v[j] = from_float<C>(to_float(in.v[j]));
  store_vec<C, VEC>(dst, o);
}

template <typename T, typename C, int VEC>
__global__ void write_kv_cache_kernel(const T* __restrict__ k,                // [T, num_kv_heads, D]
                                      const T* __restrict__ v,                // [T, num_kv_heads, D]
                                      const int64_t* __restrict__ slot_mapping,  // [T]
                                      C* __restrict__ k_cache,  // [num_blocks, num_kv_heads, block_size, D]
                                      C* __restrict__ v_cache,  // [num_blocks, num_kv_heads, block_size, D]
                                      int64_t k_token_stride, int64_t k_head_stride, int64_t v_token_stride,
                                      int64_t v_head_stride, int64_t num_heads, int64_t block_size, int64_t head_dim,
                                      int64_t num_slots) {
  const int64_t t = blockIdx.x;
  const int64_t slot = slot_mapping[t];
  if (slot < 0 || slot >= num_slots) return;
  const int64_t block = slot / block_size, offset = slot % block_size;
  const int64_t chunks = head_dim / VEC;
  for (int64_t n = threadIdx.x; n < num_heads * chunks; n += blockDim.x) {
    const int64_t h = n / chunks, i = (n % chunks) * VEC;
    const int64_t dst = ((block * num_heads + h) * block_size + offset) * head_dim + i;
    convert_chunk<T, VEC>(k + t * k_token_stride + h * k_head_stride + i, k_cache + dst);
    convert_chunk<T, VEC>(v + t * v_token_stride + h * v_head_stride + i, v_cache + dst);
  }
}

template <typename T, typename C, int VEC>
void launch(const WriteKvCacheParams& p, gpuStream_t stream) {
  const Tensor& kc = p.k_cache;
  const int64_t heads = kc.shape[1], block_size = kc.shape[2], head_dim = kc.shape[3];
  const int threads = block_threads_for(heads * head_dim / VEC, 512);
  write_kv_cache_kernel<T, C, VEC><<<static_cast<unsigned>(p.slot_mapping.shape[0]), threads, 0, stream>>>(
      p.k.ptr<const T>(), p.v.ptr<const T>(), p.slot_mapping.ptr<const int64_t>(), kc.ptr<C>(), p.v_cache.ptr<C>(),
      p.k.stride[0], p.k.stride[1], p.v.stride[0], p.v.stride[1], heads, block_size, head_dim,
      kc.shape[0] * block_size);
}

}  // namespace

void launch_write_kv_cache(const WriteKvCacheParams& p, gpuStream_t stream) {
  const Tensor& kc = p.k_cache;
  PAGEDLLM_CHECK(p.k.ndim == 3 && p.v.ndim == 3 && p.k.dtype == p.v.dtype, "write_kv_cache k and v: 3-d, one dtype");
  for (int d = 0; d < 3; ++d) PAGEDLLM_CHECK(p.k.shape[d] == p.v.shape[d], "write_kv_cache k and v shapes differ");
  PAGEDLLM_CHECK(p.k.stride[2] == 1 && p.v.stride[2] == 1, "write_kv_cache k and v need unit stride over D");
  PAGEDLLM_CHECK(kc.ndim == 4 && kc.is_contiguous() && p.v_cache.ndim == 4 && p.v_cache.is_contiguous() &&
                     p.v_cache.dtype == kc.dtype,
                 "k_cache and v_cache must be contiguous [num_blocks, num_kv_heads, block_size, D] of one dtype");
  for (int d = 0; d < 4; ++d) PAGEDLLM_CHECK(kc.shape[d] == p.v_cache.shape[d], "v_cache and k_cache shapes differ");
  PAGEDLLM_CHECK(p.k.shape[1] == kc.shape[1] && p.k.shape[2] == kc.shape[3],
                 "write_kv_cache k [T, " << p.k.shape[1] << ", " << p.k.shape[2] << "] does not match the cache's "
                                         << kc.shape[1] << " heads of " << kc.shape[3]);
  const Tensor& sm = p.slot_mapping;
  PAGEDLLM_CHECK(sm.ndim == 1 && sm.dtype == DType::kInt64 && sm.is_contiguous() && sm.shape[0] == p.k.shape[0],
                 "slot_mapping must be a contiguous int64 [T]");
  PAGEDLLM_CHECK(kc.shape[2] > 0, "cache block_size must be positive");
  PAGEDLLM_CHECK(sm.shape[0] <= kMaxGridX, "write_kv_cache: too many tokens for one grid");
  if (sm.shape[0] == 0 || kc.shape[1] == 0 || kc.shape[3] == 0) return;
  PAGEDLLM_DISPATCH_FLOAT(p.k.dtype, T, {
    PAGEDLLM_DISPATCH_FLOAT(kc.dtype, C, {
      constexpr int kVec = vec_for<T, C>();
      if (vectorizable(p.k, kVec) && vectorizable(p.v, kVec) && vectorizable(kc, kVec) &&
          vectorizable(p.v_cache, kVec)) {
        launch<T, C, kVec>(p, stream);
      } else {
        launch<T, C, 1>(p, stream);
      }
    });
  });
  PAGEDLLM_GPU_CHECK(gpuGetLastError());
}

}  // namespace pagedllm
