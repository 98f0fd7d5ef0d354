// rotary_embedding (NeoX / rotate_half layout), AVX2, in place on q and k:
//   x1' = x1 * cos - x2 * sin,  x2' = x2 * cos + x1 * sin
// where x1 / x2 are the first / second half of a head and cos / sin come from the cache row
// of the token's position. Tokens are independent, split over threads.
#include <algorithm>
#include <functional>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"
#include "util/thread_pool.h"

namespace pagedllm {
namespace cpu {

namespace {

void rotate_head(float* x, const float* cos, const float* sin, int64_t half) {
  float* x2 = x + half;
  int64_t i = 0;
  for (; i + kW <= half; i += kW) {
    vf a = vload(x + i), b = vload(x2 + i), c = vload(cos + i), s = vload(sin + i);
    vstore(x + i, vsub(vmul(a, c), vmul(b, s)));
    vstore(x2 + i, vfmadd(a, s, vmul(b, c)));
  }
  if (i < half) {
    int rem = static_cast<int>(half - i);
    vf a = vload(x + i, rem), b = vload(x2 + i, rem);
    vf c = vload(cos + i, rem), s = vload(sin + i, rem);
    vstore(x + i, vsub(vmul(a, c), vmul(b, s)), rem);
    vstore(x2 + i, vfmadd(a, s, vmul(b, c)), rem);
  }
}

void rotate_tokens(const Tensor& x, const RotaryParams& p, int64_t t0, int64_t t1) {
  int64_t heads = x.shape[1];
  int64_t half = x.shape[2] / 2;
  for (int64_t t = t0; t < t1; ++t) {
    int64_t pos = p.positions.ptr<int32_t>()[t];
    const float* cos = p.cos_sin_cache.ptr<float>() + pos * p.cos_sin_cache.stride[0];
    const float* sin = cos + half;
    for (int64_t h = 0; h < heads; ++h)
      rotate_head(x.ptr<float>() + t * x.stride[0] + h * x.stride[1], cos, sin, half);
  }
}

}  // namespace

void rotary_embedding_avx2(const RotaryParams& p, const KernelContext& ctx) {
  auto body = [&](int64_t t0, int64_t t1, int) {
    rotate_tokens(p.q, p, t0, t1);
    rotate_tokens(p.k, p, t0, t1);
  };
  int64_t per_token = (p.q.shape[1] + p.k.shape[1]) * p.q.shape[2];
  ctx.pool->parallel_for(p.positions.shape[0], rows_per_task(per_token), std::cref(body));
}

}  // namespace cpu
}  // namespace pagedllm
