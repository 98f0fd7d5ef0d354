// linear for the AVX512-BF16 tier. M <= kLinearDpbf16MaxM with bfloat16 weights rounds the
// activations to bfloat16 (round to nearest even) and accumulates pairs of products in
// float32 with _mm512_dpbf16_ps; everything else is the AVX-512 code of linear_impl.h.
#include "backend/cpu/linear_impl.h"

#if !defined(__AVX512BF16__)
#error "linear_avx512bf16.cc needs -mavx512bf16"
#endif

namespace pagedllm {
namespace cpu {

namespace {

constexpr int64_t kPairs = 32;  // bfloat16 values per 512-bit register

inline __m512bh load_bh(const uint16_t* p) { return (__m512bh)_mm512_loadu_si512(p); }
inline __m512bh load_bh(const uint16_t* p, __mmask32 mask) {
  return (__m512bh)_mm512_maskz_loadu_epi16(mask, p);
}

// out[mi, ni] = sum_k xb[mi, k] * w[ni, k]; xb rows have stride ldxb.
template <int MT, int NT>
void dp_tile(const uint16_t* xb, int64_t ldxb, const uint16_t* w, int64_t k, float* out,
             int64_t ldo) {
  __m512 acc[MT][NT];
#pragma GCC unroll 4
  for (int mi = 0; mi < MT; ++mi)
#pragma GCC unroll 8
    for (int ni = 0; ni < NT; ++ni) acc[mi][ni] = _mm512_setzero_ps();
  int64_t kk = 0;
  for (; kk + kPairs <= k; kk += kPairs) {
    __m512bh wv[NT];
#pragma GCC unroll 8
    for (int ni = 0; ni < NT; ++ni) wv[ni] = load_bh(w + ni * k + kk);
#pragma GCC unroll 4
    for (int mi = 0; mi < MT; ++mi) {
      __m512bh xv = load_bh(xb + mi * ldxb + kk);
#pragma GCC unroll 8
      for (int ni = 0; ni < NT; ++ni) acc[mi][ni] = _mm512_dpbf16_ps(acc[mi][ni], xv, wv[ni]);
    }
  }
  if (kk < k) {
    __mmask32 mask = static_cast<__mmask32>((uint64_t{1} << (k - kk)) - 1);
    for (int mi = 0; mi < MT; ++mi) {
      __m512bh xv = load_bh(xb + mi * ldxb + kk, mask);
      for (int ni = 0; ni < NT; ++ni)
        acc[mi][ni] = _mm512_dpbf16_ps(acc[mi][ni], xv, load_bh(w + ni * k + kk, mask));
    }
  }
  for (int mi = 0; mi < MT; ++mi)
    for (int ni = 0; ni < NT; ++ni) out[mi * ldo + ni] = _mm512_reduce_add_ps(acc[mi][ni]);
}

template <int MT>
void dp_rows(const uint16_t* xb, int64_t ldxb, const LinearArgs& a, int64_t m0, int64_t n0,
             int64_t n1) {
  constexpr int NT = MT == 1 ? 8 : 4;
  const uint16_t* w = static_cast<const uint16_t*>(a.w);
  const uint16_t* x = xb + m0 * ldxb;
  float* out = a.out + m0 * a.ldo;
  int64_t j = n0;
  for (; j + NT <= n1; j += NT) dp_tile<MT, NT>(x, ldxb, w + j * a.k, a.k, out + j, a.ldo);
  for (; j < n1; ++j) dp_tile<MT, 1>(x, ldxb, w + j * a.k, a.k, out + j, a.ldo);
}

void dp_range(const uint16_t* xb, int64_t ldxb, const LinearArgs& a, int64_t n0, int64_t n1) {
  for (int64_t m0 = 0; m0 < a.m; m0 += 4) {
    switch (std::min<int64_t>(4, a.m - m0)) {
      case 1: dp_rows<1>(xb, ldxb, a, m0, n0, n1); break;
      case 2: dp_rows<2>(xb, ldxb, a, m0, n0, n1); break;
      case 3: dp_rows<3>(xb, ldxb, a, m0, n0, n1); break;
      default: dp_rows<4>(xb, ldxb, a, m0, n0, n1); break;
    }
  }
}

}  // namespace

void linear_avx512bf16(const LinearParams& p, const KernelContext& ctx) {
  if (p.weight.dtype != DType::kBFloat16 || p.x.shape[0] > kLinearDpbf16MaxM) {
    linear_generic(p, ctx);
    return;
  }
  LinearArgs a = linear_args(p);
  int64_t ldxb = (a.k + kPairs - 1) / kPairs * kPairs;
  PAGEDLLM_CHECK(ctx.scratch_floats * 2 >= a.m * ldxb, "linear scratch too small");
  uint16_t* xb = reinterpret_cast<uint16_t*>(ctx.scratch);  // [M, ldxb] bfloat16
  for (int64_t i = 0; i < a.m; ++i) vconvert(a.x + i * a.ldx, xb + i * ldxb, a.k);
  int64_t min_cols = std::max<int64_t>(16, 4096 / std::max<int64_t>(a.k, 1));
  auto body = [&](int64_t n0, int64_t n1, int) {
    dp_range(xb, ldxb, a, n0, n1);
    add_bias(a, true, n0, n1);
  };
  ctx.pool->parallel_for(a.n, min_cols, std::cref(body));
}

}  // namespace cpu
}  // namespace pagedllm
