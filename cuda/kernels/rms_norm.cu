// RMSNorm: one thread block per row. Pass 1 sums squares (after the residual add, whose
// result is stored and then read back rounded, as the unfused model computes it); pass 2
// scales. Every thread touches the same chunks in both passes and the block reduction is a
// barrier between them, so x and out may alias without __restrict__ on them.
#include "kernels/rms_norm.cuh"

#include "kernels/dtype.cuh"
#include "kernels/kernel_util.cuh"

namespace pagedllm {
namespace {

template <typename T, typename W, int VEC>
__global__ void rms_norm_kernel(const T* x,                     // [N, H], row stride x_stride
                                T* residual,                    // [N, H], row stride res_stride, or nullptr
                                const W* __restrict__ weight,   // [H]
                                T* out,                         // [N, H], row stride out_stride
                                int64_t x_stride, int64_t res_stride, int64_t out_stride, int64_t hidden,
                                float eps) {
  const int64_t r = blockIdx.x;
  const T* x_row = x + r * x_stride;
  T* res_row = residual != nullptr ? residual + r * res_stride : nullptr;
  T* out_row = out + r * out_stride;
  const int64_t chunks = hidden / VEC;
  float sumsq = 0.0f;
  for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) {
    const AlignedVec<T, VEC> xv = load_vec<T, VEC>(x_row + c * VEC);
    if (res_row != nullptr) {
      AlignedVec<T, VEC> rv = load_vec<T, VEC>(res_row + c * VEC);
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        rv.v[j] = from_float<T>(to_float(rv.v[j]) + to_float(xv.v[j]));
        const float f = to_float(rv.v[j]);
        sumsq += f * f;
      }
      store_vec<T, VEC>(res_row + c * VEC, rv);
    } else {
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        const float f = to_float(xv.v[j]);
        sumsq += f * f;
      }
    }
  }
  const float inv = 1.0f / sqrtf(block_sum(sumsq) / static_cast<float>(hidden) + eps);
  const T* src_row = res_row != nullptr ? res_row : x_row;
  for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) {
    const AlignedVec<T, VEC> v = load_vec<T, VEC>(src_row + c * VEC);
    AlignedVec<T, VEC> o;
#pragma unroll
    for (int j = 0; j < VEC; ++j) o.v[j] = from_float<T>(to_float(v.v[j]) * inv * to_float(weight[c * VEC + j]));
    store_vec<T, VEC>(out_row + c * VEC, o);
  }
}

template <typename T, typename W, int VEC>
void launch(const RmsNormParams& p, gpuStream_t stream) {
  const int64_t hidden = p.x.shape[1];
  const bool has_residual = p.residual.data != nullptr;
  const int threads = block_threads_for(hidden / VEC, 1024);
  rms_norm_kernel<T, W, VEC><<<static_cast<unsigned>(p.x.shape[0]), threads, 0, stream>>>(
      p.x.ptr<const T>(), has_residual ? p.residual.ptr<T>() : nullptr, p.weight.ptr<const W>(), p.out.ptr<T>(),
      p.x.stride[0], has_residual ? p.residual.stride[0] : 0, p.out.stride[0], hidden, p.eps);
}

void check_rows(const Tensor& t, const Tensor& x, const char* what) {
  PAGEDLLM_CHECK(t.ndim == 2 && t.shape[0] == x.shape[0] && t.shape[1] == x.shape[1] && t.dtype == x.dtype,
                 "rms_norm " << what << " must be [" << x.shape[0] << ", " << x.shape[1] << "] "
                             << dtype_name(x.dtype));
  PAGEDLLM_CHECK(t.stride[1] == 1, "rms_norm " << what << " needs unit column stride");
}

}  // namespace

void launch_rms_norm(const RmsNormParams& p, gpuStream_t stream) {
  PAGEDLLM_CHECK(p.x.ndim == 2, "rms_norm x must be [N, H]");
  check_rows(p.x, p.x, "x");
  check_rows(p.out, p.x, "out");
  if (p.residual.data != nullptr) check_rows(p.residual, p.x, "residual");
  PAGEDLLM_CHECK(p.weight.ndim == 1 && p.weight.shape[0] == p.x.shape[1] && p.weight.stride[0] == 1,
                 "rms_norm weight must be a dense [H]");
  PAGEDLLM_CHECK(p.x.shape[0] <= kMaxGridX, "rms_norm: too many rows for one grid");
  if (p.x.shape[0] == 0 || p.x.shape[1] == 0) return;
  PAGEDLLM_DISPATCH_FLOAT(p.x.dtype, T, {
    PAGEDLLM_DISPATCH_FLOAT(p.weight.dtype, W, {
      constexpr int kVec = vec_for<T, T>();
      if (vectorizable(p.x, kVec) && vectorizable(p.out, kVec) && vectorizable(p.residual, kVec)) {
        launch<T, W, kVec>(p, stream);
      } else {
        launch<T, W, 1>(p, stream);
      }
    });
  });
  PAGEDLLM_GPU_CHECK(gpuGetLastError());
}

}  // namespace pagedllm
