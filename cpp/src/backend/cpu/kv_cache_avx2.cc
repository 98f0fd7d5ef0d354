// write_kv_cache, AVX2: copies this step's K and V rows (float32) into their cache slots,
// rounding to bfloat16 (nearest even) for a bfloat16 cache. Slots < 0 are skipped; slots were
// range-checked by the backend. Tokens are split over threads (slots are distinct).
// Layout of a (block, KV head) slab of bs x D elements: V is [bs, D] (a key's values are
// adjacent), K is transposed, [D, bs] (dim i of the block's keys is adjacent), so attention
// computes bs scores with vector FMAs and no horizontal sums (attention_block.h).
#include <algorithm>
#include <functional>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"
#include "util/thread_pool.h"

namespace pagedllm {
namespace cpu {

namespace {

constexpr int64_t kMaxHeadDim = 256;  // K elements converted per pass

template <typename C>
void write_tokens(const WriteKvCacheParams& p, int64_t t0, int64_t t1) {
  int64_t heads = p.k_cache.shape[1];
  int64_t block_size = p.k_cache.shape[2];
  int64_t d = p.k_cache.shape[3];
  const int64_t* slots = p.slot_mapping.ptr<int64_t>();
  for (int64_t t = t0; t < t1; ++t) {
    int64_t slot = slots[t];
    if (slot < 0) continue;
    const int64_t in_block = slot % block_size;
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t slab = ((slot / block_size) * heads + h) * block_size * d;
      vconvert(p.v.ptr<float>() + t * p.v.stride[0] + h * p.v.stride[1],
               p.v_cache.ptr<C>() + slab + in_block * d, d);
      C row[kMaxHeadDim];
      for (int64_t i0 = 0; i0 < d; i0 += kMaxHeadDim) {  // K: one column of [D, bs]
        const int64_t n = std::min(kMaxHeadDim, d - i0);
        vconvert(p.k.ptr<float>() + t * p.k.stride[0] + h * p.k.stride[1] + i0, row, n);
        C* col = p.k_cache.ptr<C>() + slab + i0 * block_size + in_block;
        for (int64_t i = 0; i < n; ++i) col[i * block_size] = row[i];
      }
    }
  }
}

}  // namespace

void write_kv_cache_avx2(const WriteKvCacheParams& p, const KernelContext& ctx) {
  bool bf16 = p.k_cache.dtype == DType::kBFloat16;
  auto body = [&](int64_t t0, int64_t t1, int) {
    if (bf16) {
      write_tokens<uint16_t>(p, t0, t1);
    } else {
      write_tokens<float>(p, t0, t1);
    }
  };
  int64_t per_token = 2 * p.k.shape[1] * p.k.shape[2];
  ctx.pool->parallel_for(p.slot_mapping.shape[0], rows_per_task(per_token), std::cref(body));
}

}  // namespace cpu
}  // namespace pagedllm
