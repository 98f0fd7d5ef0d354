// Embedding: one thread block per token; threads stride over the row in VEC-element chunks
// (VEC > 1 only when the launcher found every row aligned).
#include "kernels/embedding.cuh"

#include "kernels/dtype.cuh"
#include "kernels/kernel_util.cuh"

namespace pagedllm {
namespace {

template <typename W, typename T, int VEC>
__global__ void embedding_kernel(const int32_t* __restrict__ token_ids,  // [T]
                                 const W* __restrict__ table,            // [V, H], row stride table_stride
                                 T* __restrict__ out,                    // [T, H], row stride out_stride
                                 int64_t vocab, int64_t hidden, int64_t table_stride, int64_t out_stride) {
  const int64_t t = blockIdx.x;
  const int64_t id = token_ids[t];
  T* out_row = out + t * out_stride;
  if (id < 0 || id >= vocab) {
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) out_row[i] = from_float<T>(quiet_nan());
    return;
  }
  const W* row = table + id * table_stride;
  for (int64_t c = threadIdx.x; c < hidden / VEC; c += blockDim.x) {
    const AlignedVec<W, VEC> in = load_vec<W, VEC>(row + c * VEC);
    AlignedVec<T, VEC> o;
#pragma unroll
    for (int j = 0; j < VEC; ++j) o.v[j] = from_float<T>(to_float(in.v[j]));
    store_vec<T, VEC>(out_row + c * VEC, o);
  }
}

template <typename W, typename T, int VEC>
void launch(const EmbeddingParams& p, gpuStream_t stream) {
  const int64_t hidden = p.table.shape[1];
  const int threads = block_threads_for(hidden / VEC, 512);
  embedding_kernel<W, T, VEC><<<static_cast<unsigned>(p.token_ids.shape[0]), threads, 0, stream>>>(
      p.token_ids.ptr<const int32_t>(), p.table.ptr<const W>(), p.out.ptr<T>(), p.table.shape[0], hidden,
      p.table.stride[0], p.out.stride[0]);
}

}  // namespace

void launch_embedding(const EmbeddingParams& p, gpuStream_t stream) {
  PAGEDLLM_CHECK(p.token_ids.ndim == 1 && p.token_ids.dtype == DType::kInt32 && p.token_ids.is_contiguous(),
                 "embedding token_ids must be a contiguous int32 [T]");
  PAGEDLLM_CHECK(p.table.ndim == 2 && p.out.ndim == 2, "embedding wants a 2-d table and out");
  PAGEDLLM_CHECK(p.table.stride[1] == 1 && p.out.stride[1] == 1, "embedding wants unit column strides");
  const int64_t num_tokens = p.token_ids.shape[0];
  PAGEDLLM_CHECK(p.out.shape[0] == num_tokens && p.out.shape[1] == p.table.shape[1],
                 "embedding out [" << p.out.shape[0] << ", " << p.out.shape[1] << "] does not match T = "
                                   << num_tokens << ", H = " << p.table.shape[1]);
  PAGEDLLM_CHECK(num_tokens <= kMaxGridX, "embedding: too many tokens for one grid");
  if (num_tokens == 0 || p.table.shape[1] == 0) return;
  PAGEDLLM_DISPATCH_FLOAT(p.table.dtype, W, {
    PAGEDLLM_DISPATCH_FLOAT(p.out.dtype, T, {
      constexpr int kVec = vec_for<W, T>();
      if (vectorizable(p.table, kVec) && vectorizable(p.out, kVec)) {
        launch<W, T, kVec>(p, stream);
      } else {
        launch<W, T, 1>(p, stream);
      }
    });
  });
  PAGEDLLM_GPU_CHECK(gpuGetLastError());
}

}  // namespace pagedllm
