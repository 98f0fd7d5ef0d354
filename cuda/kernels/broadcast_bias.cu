// Broadcast of a bias row: one thread block per output row (grid-strided past the grid limit),
// threads stride over the N columns.
#include "kernels/broadcast_bias.cuh"

#include "kernels/dtype.cuh"

namespace pagedllm {
namespace {

template <typename B, typename T>
__global__ void broadcast_bias_kernel(const B* __restrict__ bias,  // [N]
                                      T* __restrict__ out,         // [M, N], row stride out_stride
                                      int64_t rows, int64_t cols, int64_t out_stride) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    T* row = out + r * out_stride;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) row[c] = from_float<T>(to_float(bias[c]));
  }
}

}  // namespace

void launch_broadcast_bias(const BroadcastBiasParams& p, gpuStream_t stream) {
  PAGEDLLM_CHECK(p.out.ndim == 2 && p.bias.ndim == 1, "broadcast_bias wants 2-d out and 1-d bias");
  const int64_t rows = p.out.shape[0], cols = p.out.shape[1];
  PAGEDLLM_CHECK(p.bias.shape[0] == cols, "broadcast_bias: bias has " << p.bias.shape[0] << " values, out has "
                                                                      << cols << " columns");
  PAGEDLLM_CHECK(cols <= 1 || (p.out.stride[1] == 1 && p.bias.stride[0] == 1),
                 "broadcast_bias wants unit column strides");
  PAGEDLLM_CHECK(rows <= 1 || p.out.stride[0] >= cols, "broadcast_bias: out rows overlap");
  if (rows == 0 || cols == 0) return;
  const int threads = static_cast<int>(cols < 256 ? ((cols + 31) / 32) * 32 : 256);
  const unsigned blocks = static_cast<unsigned>(rows < 65535 ? rows : 65535);
  const int64_t out_stride = rows <= 1 ? cols : p.out.stride[0];
  PAGEDLLM_DISPATCH_FLOAT(p.bias.dtype, B, {
    PAGEDLLM_DISPATCH_FLOAT(p.out.dtype, T, {
      broadcast_bias_kernel<B, T><<<blocks, threads, 0, stream>>>(p.bias.ptr<const B>(), p.out.ptr<T>(), rows,
                                                                  cols, out_stride);
    });
  });
  PAGEDLLM_GPU_CHECK(gpuGetLastError());
}

}  // namespace pagedllm
