// gather_rows: one thread block per output row, copying the row in the widest word (16, 8, 4,
// 2 or 1 bytes) that divides the row size, both row strides and both base addresses.
#include "kernels/gather_rows.cuh"

#include "kernels/kernel_util.cuh"

namespace pagedllm {
namespace {

// BYTES bytes as one aligned access of 32-, 16- or 8-bit lanes.
template <int BYTES>
struct WordOf {
  using Lane = uint32_t;
};
template <>
struct WordOf<2> {
  using Lane = uint16_t;
};
template <>
struct WordOf<1> {
  using Lane = unsigned char;
};
template <int BYTES>
using Word = AlignedVec<typename WordOf<BYTES>::Lane, BYTES / sizeof(typename WordOf<BYTES>::Lane)>;

template <int BYTES>
__global__ void gather_rows_kernel(const Word<BYTES>* __restrict__ x,  // [N, row_words], row stride x_stride
                                   const int32_t* __restrict__ indices,  // [R]
                                   Word<BYTES>* __restrict__ out,      // [R, row_words], row stride out_stride
                                   int64_t num_src_rows, int64_t row_words, int64_t x_stride, int64_t out_stride) {
  const int64_t r = blockIdx.x;
  const int64_t src = indices[r];
  Word<BYTES>* dst = out + r * out_stride;
  if (src < 0 || src >= num_src_rows) {
    using Lane = typename WordOf<BYTES>::Lane;
    Word<BYTES> ones;
#pragma unroll
    for (int j = 0; j < static_cast<int>(BYTES / sizeof(Lane)); ++j) ones.v[j] = static_cast<Lane>(~Lane(0));
    for (int64_t i = threadIdx.x; i < row_words; i += blockDim.x) dst[i] = ones;
    return;
  }
  const Word<BYTES>* row = x + src * x_stride;
  for (int64_t i = threadIdx.x; i < row_words; i += blockDim.x) dst[i] = row[i];
}

template <int BYTES>
void launch(const GatherRowsParams& p, int64_t row_bytes, int64_t elem, gpuStream_t stream) {
  const int64_t row_words = row_bytes / BYTES;
  gather_rows_kernel<BYTES><<<static_cast<unsigned>(p.indices.shape[0]), block_threads_for(row_words, 512), 0,
                              stream>>>(
      static_cast<const Word<BYTES>*>(p.x.data), p.indices.ptr<const int32_t>(), static_cast<Word<BYTES>*>(p.out.data),
      p.x.shape[0], row_words, p.x.stride[0] * elem / BYTES, p.out.stride[0] * elem / BYTES);
}

}  // namespace

void launch_gather_rows(const GatherRowsParams& p, gpuStream_t stream) {
  PAGEDLLM_CHECK(p.x.ndim == 2 && p.out.ndim == 2 && p.x.dtype == p.out.dtype,
                 "gather_rows needs 2-d x and out of one dtype");
  PAGEDLLM_CHECK(p.x.stride[1] == 1 && p.out.stride[1] == 1, "gather_rows needs unit column strides");
  PAGEDLLM_CHECK(p.indices.ndim == 1 && p.indices.dtype == DType::kInt32 && p.indices.is_contiguous(),
                 "gather_rows indices must be a contiguous int32 [R]");
  PAGEDLLM_CHECK(p.out.shape[0] == p.indices.shape[0] && p.out.shape[1] == p.x.shape[1],
                 "gather_rows out must be [R, H]");
  PAGEDLLM_CHECK(p.indices.shape[0] <= kMaxGridX, "gather_rows: too many rows for one grid");
  if (p.indices.shape[0] == 0 || p.x.shape[1] == 0) return;
  const auto elem = static_cast<int64_t>(dtype_size(p.x.dtype));
  const int64_t row_bytes = p.x.shape[1] * elem;
  // Word size: divides the row size, both row strides (in bytes) and both base addresses.
  auto fits = [&](int64_t bytes) {
    return row_bytes % bytes == 0 && (p.x.stride[0] * elem) % bytes == 0 && (p.out.stride[0] * elem) % bytes == 0 &&
           is_aligned(p.x.data, bytes) && is_aligned(p.out.data, bytes);
  };
  if (fits(16)) {
    launch<16>(p, row_bytes, elem, stream);
  } else if (fits(8)) {
    launch<8>(p, row_bytes, elem, stream);
  } else if (fits(4)) {
    launch<4>(p, row_bytes, elem, stream);
  } else if (fits(2)) {
    launch<2>(p, row_bytes, elem, stream);
  } else {
    launch<1>(p, row_bytes, elem, stream);
  }
  PAGEDLLM_GPU_CHECK(gpuGetLastError());
}

}  // namespace pagedllm
