// Per-head RMSNorm: one warp per (token, head) row, kWarpsPerBlock rows per block; the sum of
// squares is a warp reduction, so whole warps past the last row simply return.
#include "kernels/head_rms_norm.cuh"

#include "kernels/dtype.cuh"
#include "kernels/kernel_util.cuh"

namespace pagedllm {
namespace {

constexpr int kWarpsPerBlock = 4;

template <typename T, typename W, int VEC>
__global__ void head_rms_norm_kernel(T* __restrict__ x,             // [T, num_heads, D], strides token_stride, head_stride, 1
                                     const W* __restrict__ weight,  // [D]
                                     int64_t num_rows, int64_t num_heads, int64_t token_stride, int64_t head_stride,
                                     int64_t head_dim, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / PAGEDLLM_WARP_SIZE;
  if (row >= num_rows) return;
  const int lane = static_cast<int>(threadIdx.x) % PAGEDLLM_WARP_SIZE;
  T* p = x + (row / num_heads) * token_stride + (row % num_heads) * head_stride;
  const int64_t chunks = head_dim / VEC;
  float sumsq = 0.0f;
  for (int64_t c = lane; c < chunks; c += PAGEDLLM_WARP_SIZE) {
    const AlignedVec<T, VEC> v = load_vec<T, VEC>(p + c * VEC);
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      const float f = to_float(v.v[j]);
      sumsq += f * f;
    }
  }
  const float inv = 1.0f / sqrtf(warp_sum(sumsq) / static_cast<float>(head_dim) + eps);
  for (int64_t c = lane; c < chunks; c += PAGEDLLM_WARP_SIZE) {
    AlignedVec<T, VEC> v = load_vec<T, VEC>(p + c * VEC);
#pragma unroll
    for (int j = 0; j < VEC; ++j) v.v[j] = from_float<T>(to_float(v.v[j]) * inv * to_float(weight[c * VEC + j]));
    store_vec<T, VEC>(p + c * VEC, v);
  }
}

template <typename T, typename W, int VEC>
void launch(const HeadRmsNormParams& p, gpuStream_t stream) {
  const int64_t rows = p.x.shape[0] * p.x.shape[1];
  const int64_t blocks = (rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
  head_rms_norm_kernel<T, W, VEC><<<static_cast<unsigned>(blocks), kWarpsPerBlock * PAGEDLLM_WARP_SIZE, 0, stream>>>(
      p.x.ptr<T>(), p.weight.ptr<const W>(), rows, p.x.shape[1], p.x.stride[0], p.x.stride[1], p.x.shape[2], p.eps);
}

}  // namespace

void launch_head_rms_norm(const HeadRmsNormParams& p, gpuStream_t stream) {
  PAGEDLLM_CHECK(p.x.ndim == 3 && p.x.stride[2] == 1, "head_rms_norm x must be [T, num_heads, D] with unit D stride");
  PAGEDLLM_CHECK(p.weight.ndim == 1 && p.weight.shape[0] == p.x.shape[2] && p.weight.stride[0] == 1,
                 "head_rms_norm weight must be a dense [D]");
  const int64_t rows = p.x.shape[0] * p.x.shape[1];
  PAGEDLLM_CHECK(rows / kWarpsPerBlock < kMaxGridX, "head_rms_norm: too many rows for one grid");
  if (rows == 0 || p.x.shape[2] == 0) return;
  PAGEDLLM_DISPATCH_FLOAT(p.x.dtype, T, {
    PAGEDLLM_DISPATCH_FLOAT(p.weight.dtype, W, {
      constexpr int kVec = vec_for<T, T>();
      if (vectorizable(p.x, kVec)) {
        launch<T, W, kVec>(p, stream);
      } else {
        launch<T, W, 1>(p, stream);
      }
    });
  });
  PAGEDLLM_GPU_CHECK(gpuGetLastError());
}

}  // namespace pagedllm
