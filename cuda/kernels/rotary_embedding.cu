// Rotary embedding: one thread block per token; threads stride over the (head, i) rotation
// pairs of q's heads, then k's. Each pair is read and written by one thread only.
#include "kernels/rotary_embedding.cuh"

#include "kernels/dtype.cuh"
#include "kernels/kernel_util.cuh"

namespace pagedllm {
namespace {

template <typename T>
__global__ void rotary_embedding_kernel(const int32_t* __restrict__ positions,  // [T]
                                        T* __restrict__ q,                      // [T, num_q_heads, D]
                                        T* __restrict__ k,                      // [T, num_kv_heads, D]
                                        const float* __restrict__ cos_sin_cache,  // [max_position, D]
                                        int64_t q_token_stride, int64_t q_head_stride, int64_t k_token_stride,
                                        int64_t k_head_stride, int64_t cache_stride, int64_t num_q_heads,
                                        int64_t num_kv_heads, int64_t half, int64_t max_position) {
  const int64_t t = blockIdx.x;
  const int64_t pos = positions[t];
  const bool valid = pos >= 0 && pos < max_position;
  const float* cos = cos_sin_cache + (valid ? pos : 0) * cache_stride;  // [D / 2]
  const float* sin = cos + half;                                        // [D / 2]
  const int64_t q_pairs = num_q_heads * half;
  const int64_t pairs = q_pairs + num_kv_heads * half;
  for (int64_t n = threadIdx.x; n < pairs; n += blockDim.x) {
    const bool is_q = n < q_pairs;
    const int64_t m = is_q ? n : n - q_pairs;
    const int64_t head = m / half, i = m % half;
    T* x = is_q ? q + t * q_token_stride + head * q_head_stride : k + t * k_token_stride + head * k_head_stride;
    const float x1 = to_float(x[i]), x2 = to_float(x[i + half]);
    const float c = valid ? cos[i] : quiet_nan();
    const float s = valid ? sin[i] : quiet_nan();
    x[i] = from_float<T>(x1 * c - x2 * s);
    x[i + half] = from_float<T>(x2 * c + x1 * s);
  }
}

}  // namespace

void launch_rotary_embedding(const RotaryParams& p, gpuStream_t stream) {
  PAGEDLLM_CHECK(p.positions.ndim == 1 && p.positions.dtype == DType::kInt32 && p.positions.is_contiguous(),
                 "rotary positions must be a contiguous int32 [T]");
  PAGEDLLM_CHECK(p.q.ndim == 3 && p.k.ndim == 3 && p.q.dtype == p.k.dtype, "rotary q and k must be 3-d, one dtype");
  PAGEDLLM_CHECK(p.q.stride[2] == 1 && p.k.stride[2] == 1, "rotary q and k need unit stride over D");
  const int64_t num_tokens = p.positions.shape[0], head_dim = p.q.shape[2];
  PAGEDLLM_CHECK(p.q.shape[0] == num_tokens && p.k.shape[0] == num_tokens, "rotary q and k must have T rows");
  PAGEDLLM_CHECK(head_dim % 2 == 0 && p.k.shape[2] == head_dim, "rotary head_dim is odd or differs between q and k");
  const Tensor& cache = p.cos_sin_cache;
  PAGEDLLM_CHECK(cache.ndim == 2 && cache.dtype == DType::kFloat32 && cache.shape[1] == head_dim &&
                     cache.stride[1] == 1,
                 "cos_sin_cache must be float32 [max_position, " << head_dim << "] with unit column stride");
  PAGEDLLM_CHECK(num_tokens <= kMaxGridX, "rotary: too many tokens for one grid");
  if (num_tokens == 0 || head_dim == 0) return;
  const int64_t half = head_dim / 2;
  const int threads = block_threads_for((p.q.shape[1] + p.k.shape[1]) * half, 512);
  PAGEDLLM_DISPATCH_FLOAT(p.q.dtype, T, {
    rotary_embedding_kernel<T><<<static_cast<unsigned>(num_tokens), threads, 0, stream>>>(
        p.positions.ptr<const int32_t>(), p.q.ptr<T>(), p.k.ptr<T>(), cache.ptr<const float>(), p.q.stride[0],
        p.q.stride[1], p.k.stride[0], p.k.stride[1], cache.stride[0], p.q.shape[1], p.k.shape[1], half,
        cache.shape[0]);
  });
  PAGEDLLM_GPU_CHECK(gpuGetLastError());
}

}  // namespace pagedllm
