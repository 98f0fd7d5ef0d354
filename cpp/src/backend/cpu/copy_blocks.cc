// CpuBackend::copy_blocks: copy-on-write of KV blocks across every layer (see CopyBlocksParams).
// A block of one layer's cache is block_bytes contiguous bytes, so a copy is a memcpy whatever
// the cache dtype; the pool splits the (layer, pair) copies.
#include <cstring>

#include "backend/cpu/cpu_backend.h"

namespace pagedllm {

void CpuBackend::copy_blocks(const CopyBlocksParams& p) {
  const Tensor& map = p.block_mapping;
  PAGEDLLM_CHECK(map.ndim == 2 && map.shape[1] == 2 && map.dtype == DType::kInt64 && map.is_contiguous(),
                 "copy_blocks block_mapping must be a contiguous int64 [N, 2]");
  for (const Tensor* caches : {&p.key_caches, &p.value_caches}) {
    PAGEDLLM_CHECK(caches->ndim == 1 && caches->dtype == DType::kInt64 && caches->is_contiguous(),
                   "copy_blocks key_caches/value_caches must be contiguous int64 [L]");
  }
  PAGEDLLM_CHECK(p.key_caches.shape[0] == p.value_caches.shape[0], "copy_blocks K and V layer counts differ");
  PAGEDLLM_CHECK(p.block_bytes > 0 && p.num_blocks > 0, "copy_blocks needs positive block_bytes and num_blocks");
  const int64_t num_pairs = map.shape[0];
  const int64_t* pairs = map.ptr<int64_t>();  // [N, 2]
  for (int64_t n = 0; n < num_pairs; ++n) {
    const int64_t src = pairs[2 * n], dst = pairs[2 * n + 1];
    PAGEDLLM_CHECK(src >= 0 && src < p.num_blocks && dst >= 0 && dst < p.num_blocks && src != dst,
                   "copy_blocks pair " << n << " (" << src << " -> " << dst << ") is out of range [0, "
                                       << p.num_blocks << ") or copies a block onto itself");
  }
  const int64_t num_layers = p.key_caches.shape[0];
  const int64_t* key_caches = p.key_caches.ptr<int64_t>();    // [L]
  const int64_t* value_caches = p.value_caches.ptr<int64_t>();  // [L]
  const size_t bytes = static_cast<size_t>(p.block_bytes);
  pool_.parallel_for(2 * num_layers * num_pairs, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t job = begin; job < end; ++job) {
      const int64_t layer = job / (2 * num_pairs), rest = job % (2 * num_pairs);
      const int64_t n = rest / 2;
      char* cache = reinterpret_cast<char*>(rest % 2 == 0 ? key_caches[layer] : value_caches[layer]);
      std::memcpy(cache + pairs[2 * n + 1] * p.block_bytes, cache + pairs[2 * n] * p.block_bytes, bytes);
    }
  });
}

}  // namespace pagedllm
