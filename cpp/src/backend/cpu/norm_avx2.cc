// rms_norm (optionally fused with the residual add) and per-head head_rms_norm, AVX2.
// Math in float32; weights float32 or bfloat16. Rows are independent, split over threads.
#include <algorithm>
#include <cmath>
#include <functional>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"
#include "util/thread_pool.h"

namespace pagedllm {
namespace cpu {

namespace {

// out[i] = in[i] / sqrt(mean(in^2) + eps) * w[i]; out may alias in.
template <typename W>
void rms_row(const float* in, float* out, const W* w, int64_t h, float eps) {
  vf acc0 = vzero(), acc1 = vzero();
  int64_t i = 0;
  for (; i + 2 * kW <= h; i += 2 * kW) {
    vf a = vload(in + i), b = vload(in + i + kW);
    acc0 = vfmadd(a, a, acc0);
    acc1 = vfmadd(b, b, acc1);
  }
  for (; i + kW <= h; i += kW) {
    vf a = vload(in + i);
    acc0 = vfmadd(a, a, acc0);
  }
  if (i < h) {
    vf a = vload(in + i, static_cast<int>(h - i));
    acc1 = vfmadd(a, a, acc1);
  }
  float sumsq = vreduce_add(vadd(acc0, acc1));
  vf inv = vset1(1.0f / std::sqrt(sumsq / static_cast<float>(h) + eps));
  for (i = 0; i + kW <= h; i += kW) vstore(out + i, vmul(vmul(vload(in + i), inv), vload(w + i)));
  if (i < h) {
    int rem = static_cast<int>(h - i);
    vstore(out + i, vmul(vmul(vload(in + i, rem), inv), vload(w + i, rem)), rem);
  }
}

template <typename W>
void rms_norm_rows(const RmsNormParams& p, int64_t r0, int64_t r1) {
  int64_t h = p.x.shape[1];
  const W* w = p.weight.ptr<W>();
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = p.x.ptr<float>() + r * p.x.stride[0];
    float* out = p.out.ptr<float>() + r * p.out.stride[0];
    if (p.residual.data == nullptr) {
      rms_row(x, out, w, h, p.eps);
      continue;
    }
    float* res = p.residual.ptr<float>() + r * p.residual.stride[0];
    int64_t i = 0;
    for (; i + kW <= h; i += kW) vstore(res + i, vadd(vload(res + i), vload(x + i)));
    if (i < h) {
      int rem = static_cast<int>(h - i);
      vstore(res + i, vadd(vload(res + i, rem), vload(x + i, rem)), rem);
    }
    rms_row(res, out, w, h, p.eps);
  }
}

template <typename W>
void head_rms_norm_rows(const HeadRmsNormParams& p, int64_t r0, int64_t r1) {
  int64_t heads = p.x.shape[1];
  int64_t d = p.x.shape[2];
  const W* w = p.weight.ptr<W>();
  for (int64_t r = r0; r < r1; ++r) {
    float* x = p.x.ptr<float>() + (r / heads) * p.x.stride[0] + (r % heads) * p.x.stride[1];
    rms_row(x, x, w, d, p.eps);
  }
}

}  // namespace

void rms_norm_avx2(const RmsNormParams& p, const KernelContext& ctx) {
  bool bf16 = p.weight.dtype == DType::kBFloat16;
  auto body = [&](int64_t r0, int64_t r1, int) {
    if (bf16) {
      rms_norm_rows<uint16_t>(p, r0, r1);
    } else {
      rms_norm_rows<float>(p, r0, r1);
    }
  };
  ctx.pool->parallel_for(p.x.shape[0], rows_per_task(p.x.shape[1]), std::cref(body));
}

void head_rms_norm_avx2(const HeadRmsNormParams& p, const KernelContext& ctx) {
  bool bf16 = p.weight.dtype == DType::kBFloat16;
  auto body = [&](int64_t r0, int64_t r1, int) {
    if (bf16) {
      head_rms_norm_rows<uint16_t>(p, r0, r1);
    } else {
      head_rms_norm_rows<float>(p, r0, r1);
    }
  };
  ctx.pool->parallel_for(p.x.shape[0] * p.x.shape[1], rows_per_task(p.x.shape[2]),
                         std::cref(body));
}

}  // namespace cpu
}  // namespace pagedllm
