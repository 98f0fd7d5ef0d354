// SiLU-and-mul: one thread block per token row, threads stride over the I outputs.
#include "kernels/silu_and_mul.cuh"

#include "kernels/dtype.cuh"

namespace pagedllm {
namespace {

template <typename T>
__global__ void silu_and_mul_kernel(const T* __restrict__ x,  // [T, 2 * I], row stride x_stride
                                    T* __restrict__ out,      // [T, I], row stride out_stride
                                    int64_t x_stride, int64_t out_stride, int64_t inter) {
  const T* row = x + static_cast<int64_t>(blockIdx.x) * x_stride;
  T* out_row = out + static_cast<int64_t>(blockIdx.x) * out_stride;
  for (int64_t i = threadIdx.x; i < inter; i += blockDim.x) {
    const float gate = to_float(row[i]);
    const float up = to_float(row[inter + i]);
    out_row[i] = from_float<T>(gate / (1.0f + expf(-gate)) * up);
  }
}

}  // namespace

void launch_silu_and_mul(const SiluAndMulParams& p, gpuStream_t stream) {
  PAGEDLLM_CHECK(p.x.ndim == 2 && p.out.ndim == 2, "silu_and_mul wants 2-d x and out");
  PAGEDLLM_CHECK(p.x.dtype == p.out.dtype, "silu_and_mul: x and out dtypes differ");
  const int64_t num_tokens = p.x.shape[0];
  const int64_t inter = p.out.shape[1];
  PAGEDLLM_CHECK(p.out.shape[0] == num_tokens && p.x.shape[1] == 2 * inter,
                 "silu_and_mul: x [" << p.x.shape[0] << ", " << p.x.shape[1] << "] does not match out ["
                                     << p.out.shape[0] << ", " << p.out.shape[1] << "]");
  PAGEDLLM_CHECK(p.x.stride[1] == 1 && p.out.stride[1] == 1, "silu_and_mul wants unit column strides");
  if (num_tokens == 0) return;
  const int threads = static_cast<int>(inter < 1024 ? ((inter + 31) / 32) * 32 : 1024);
  PAGEDLLM_DISPATCH_FLOAT(p.x.dtype, T, {
    silu_and_mul_kernel<T><<<static_cast<unsigned>(num_tokens), threads, 0, stream>>>(
        p.x.ptr<const T>(), p.out.ptr<T>(), p.x.stride[0], p.out.stride[0], inter);
  });
  PAGEDLLM_GPU_CHECK(gpuGetLastError());
}

}  // namespace pagedllm
