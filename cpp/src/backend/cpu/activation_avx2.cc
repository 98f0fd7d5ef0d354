// silu_and_mul, AVX2: out[t, i] = silu(x[t, i]) * x[t, I + i], silu(a) = a / (1 + e^-a).
#include <algorithm>
#include <functional>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"
#include "util/thread_pool.h"

namespace pagedllm {
namespace cpu {

namespace {

inline vf silu_mul(vf a, vf b) {
  vf one = vset1(1.0f);
  vf e = vexp(vsub(vzero(), a));
  return vmul(vdiv(a, vadd(one, e)), b);
}

}  // namespace

void silu_and_mul_avx2(const SiluAndMulParams& p, const KernelContext& ctx) {
  int64_t inter = p.out.shape[1];
  auto body = [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* gate = p.x.ptr<float>() + t * p.x.stride[0];
      const float* up = gate + inter;
      float* out = p.out.ptr<float>() + t * p.out.stride[0];
      int64_t i = 0;
      for (; i + kW <= inter; i += kW) vstore(out + i, silu_mul(vload(gate + i), vload(up + i)));
      if (i < inter) {
        int rem = static_cast<int>(inter - i);
        vstore(out + i, silu_mul(vload(gate + i, rem), vload(up + i, rem)), rem);
      }
    }
  };
  ctx.pool->parallel_for(p.out.shape[0], rows_per_task(2 * inter), std::cref(body));
}

}  // namespace cpu
}  // namespace pagedllm
