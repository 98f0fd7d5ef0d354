// convert: a grid-stride loop over the flat elements (any size; indices are int64).
#include "kernels/convert.cuh"

#include "kernels/dtype.cuh"
#include "kernels/kernel_util.cuh"

namespace pagedllm {
namespace {

template <typename S, typename D>
__global__ void convert_kernel(const S* __restrict__ src,  // [n]
                               D* __restrict__ dst,        // [n]
                               int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    dst[i] = from_float<D>(to_float(src[i]));
}

}  // namespace

void launch_convert(const ConvertParams& p, gpuStream_t stream) {
  PAGEDLLM_CHECK(p.src.ndim == p.dst.ndim, "convert: rank " << p.src.ndim << " vs " << p.dst.ndim);
  for (int d = 0; d < p.src.ndim; ++d)
    PAGEDLLM_CHECK(p.src.shape[d] == p.dst.shape[d],
                   "convert: dim " << d << " is " << p.src.shape[d] << " vs " << p.dst.shape[d]);
  PAGEDLLM_CHECK(p.src.is_contiguous() && p.dst.is_contiguous(), "convert wants contiguous src and dst");
  const int64_t n = p.src.numel();
  if (n == 0) return;
  constexpr int kThreads = 256;
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  const auto grid = static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
  PAGEDLLM_DISPATCH_FLOAT(p.src.dtype, S, {
    PAGEDLLM_DISPATCH_FLOAT(p.dst.dtype, D, {
      convert_kernel<S, D><<<grid, kThreads, 0, stream>>>(p.src.ptr<const S>(), p.dst.ptr<D>(), n);
    });
  });
  PAGEDLLM_GPU_CHECK(gpuGetLastError());
}

}  // namespace pagedllm
