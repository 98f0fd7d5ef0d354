// write_kv_cache, AVX2: copies this step's K and V rows (float32) into their cache slots,
// rounding to bfloat16 (nearest even) for a bfloat16 cache. Slots < 0 are skipped; slots were
// range-checked by the backend. Tokens are split over threads (slots are distinct).
#include <algorithm>
#include <functional>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"
#include "util/thread_pool.h"

namespace pagedllm {
namespace cpu {

namespace {

template <typename C>
void write_tokens(const WriteKvCacheParams& p, int64_t t0, int64_t t1) {
  int64_t heads = p.k_cache.shape[1];
  int64_t block_size = p.k_cache.shape[2];
  int64_t d = p.k_cache.shape[3];
  const int64_t* slots = p.slot_mapping.ptr<int64_t>();
  for (int64_t t = t0; t < t1; ++t) {
    int64_t slot = slots[t];
    if (slot < 0) continue;
    int64_t base = ((slot / block_size) * heads * block_size + slot % block_size) * d;
    for (int64_t h = 0; h < heads; ++h) {
      int64_t off = base + h * block_size * d;
      vconvert(p.k.ptr<float>() + t * p.k.stride[0] + h * p.k.stride[1], p.k_cache.ptr<C>() + off, d);
      vconvert(p.v.ptr<float>() + t * p.v.stride[0] + h * p.v.stride[1], p.v_cache.ptr<C>() + off, d);
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
