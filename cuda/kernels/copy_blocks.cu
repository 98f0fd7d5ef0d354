// copy_blocks: blockIdx.x is the pair, blockIdx.y strides over the 2 * L caches (K and V of
// each layer); threads copy the block_bytes in 16-byte words when the cache base and
// block_bytes allow it (checked on the device: the addresses live in device memory), else bytes.
#include "kernels/copy_blocks.cuh"

#include "kernels/kernel_util.cuh"

namespace pagedllm {
namespace {

using Word16 = AlignedVec<uint32_t, 4>;

__global__ void copy_blocks_kernel(const int64_t* __restrict__ key_caches,     // [L]
                                   const int64_t* __restrict__ value_caches,   // [L]
                                   const int64_t* __restrict__ block_mapping,  // [N, 2]
                                   int64_t num_layers, int64_t num_blocks, int64_t block_bytes) {
  const int64_t pair = blockIdx.x;
  const int64_t src = block_mapping[2 * pair], dst = block_mapping[2 * pair + 1];
  if (src < 0 || src >= num_blocks || dst < 0 || dst >= num_blocks) return;
  for (int64_t cache = blockIdx.y; cache < 2 * num_layers; cache += gridDim.y) {
    const int64_t address = cache % 2 == 0 ? key_caches[cache / 2] : value_caches[cache / 2];
    unsigned char* base = reinterpret_cast<unsigned char*>(address);
    const unsigned char* from = base + src * block_bytes;
    unsigned char* to = base + dst * block_bytes;
    if (((address | block_bytes) & 15) == 0) {
      const int64_t words = block_bytes / 16;
      for (int64_t i = threadIdx.x; i < words; i += blockDim.x)
        reinterpret_cast<Word16*>(to)[i] = reinterpret_cast<const Word16*>(from)[i];
    } else {
      for (int64_t i = threadIdx.x; i < block_bytes; i += blockDim.x) to[i] = from[i];
    }
  }
}

}  // namespace

void launch_copy_blocks(const CopyBlocksParams& p, gpuStream_t stream) {
  const Tensor& map = p.block_mapping;
  PAGEDLLM_CHECK(map.ndim == 2 && map.shape[1] == 2 && map.dtype == DType::kInt64 && map.is_contiguous(),
                 "copy_blocks block_mapping must be a contiguous int64 [N, 2]");
  for (const Tensor* caches : {&p.key_caches, &p.value_caches})
    PAGEDLLM_CHECK(caches->ndim == 1 && caches->dtype == DType::kInt64 && caches->is_contiguous(),
                   "copy_blocks key_caches/value_caches must be contiguous int64 [L]");
  PAGEDLLM_CHECK(p.key_caches.shape[0] == p.value_caches.shape[0], "copy_blocks K and V layer counts differ");
  PAGEDLLM_CHECK(p.block_bytes > 0 && p.num_blocks > 0, "copy_blocks needs positive block_bytes and num_blocks");
  PAGEDLLM_CHECK(map.shape[0] <= kMaxGridX, "copy_blocks: too many pairs for one grid");
  const int64_t num_layers = p.key_caches.shape[0];
  if (map.shape[0] == 0 || num_layers == 0) return;
  const int64_t caches = 2 * num_layers;
  const dim3 grid(static_cast<unsigned>(map.shape[0]), static_cast<unsigned>(caches < 65535 ? caches : 65535));
  const int threads = block_threads_for(p.block_bytes / 16, 256);
  copy_blocks_kernel<<<grid, threads, 0, stream>>>(p.key_caches.ptr<const int64_t>(), p.value_caches.ptr<const int64_t>(),
                                                   map.ptr<const int64_t>(), num_layers, p.num_blocks, p.block_bytes);
  PAGEDLLM_GPU_CHECK(gpuGetLastError());
}

}  // namespace pagedllm
