// Width-generic float SIMD helpers for the CPU kernels. Included only by ISA translation units
// (linear_avx2.cc, attention_avx512.cc, ...): the vector type is __m512 when the file is built
// with AVX-512 flags, else __m256. Everything here has internal linkage, so a file built with
// AVX-512 flags never lends its code to a file built for AVX2 (no ODR merging across ISAs).
// bfloat16 values are stored as uint16_t.
// Rule for ISA files: no standard algorithms over float data (std::fill, std::copy, std::max
// on floats, ...): their instantiations are shared across translation units, and the linker
// could hand an AVX-512 copy to AVX2 code. Use these helpers and plain loops instead.
#pragma once

// g++ 12 reports its own _mm512_undefined_* placeholders as uninitialized (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cmath>
#include <cstdint>
#include <cstring>

#include "backend/cpu/float_convert.h"

#if !defined(__AVX2__) || !defined(__FMA__)
#error "simd.h needs at least -mavx2 -mfma"
#endif

namespace pagedllm {
namespace cpu {
namespace {

#if defined(__AVX512F__)

using vf = __m512;
constexpr int kW = 16;

inline vf vzero() { return _mm512_setzero_ps(); }
inline vf vset1(float x) { return _mm512_set1_ps(x); }
inline vf vload(const float* p) { return _mm512_loadu_ps(p); }
inline vf vload(const uint16_t* p) {
  __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
inline __mmask16 tail_mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
inline vf vload(const float* p, int n) { return _mm512_maskz_loadu_ps(tail_mask(n), p); }
inline vf vload(const uint16_t* p, int n) {
  __m256i h = _mm256_maskz_loadu_epi16(tail_mask(n), p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
inline void vstore(float* p, vf v) { _mm512_storeu_ps(p, v); }
inline void vstore(float* p, vf v, int n) { _mm512_mask_storeu_ps(p, tail_mask(n), v); }
inline __m256i to_bf16_bits(vf v) {
  __m512i u = _mm512_castps_si512(v);
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i bias = _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
  __m512i q = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, r, q));
}
inline void vstore(uint16_t* p, vf v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), to_bf16_bits(v));
}
inline void vstore(uint16_t* p, vf v, int n) {
  _mm256_mask_storeu_epi16(p, tail_mask(n), to_bf16_bits(v));
}
inline vf vfmadd(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
inline vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
inline vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
inline vf vdiv(vf a, vf b) { return _mm512_div_ps(a, b); }
inline vf vmax(vf a, vf b) { return _mm512_max_ps(a, b); }
inline vf vmin(vf a, vf b) { return _mm512_min_ps(a, b); }
inline vf vround(vf a) {
  return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
inline float vreduce_add(vf a) { return _mm512_reduce_add_ps(a); }
inline float vreduce_max(vf a) { return _mm512_reduce_max_ps(a); }
// 2^n for integral-valued n in [-126, 127].
inline vf vexp2i(vf n) {
  __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
  return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
}
#else

using vf = __m256;
constexpr int kW = 8;

inline vf vzero() { return _mm256_setzero_ps(); }
inline vf vset1(float x) { return _mm256_set1_ps(x); }
inline vf vload(const float* p) { return _mm256_loadu_ps(p); }
inline vf vload(const uint16_t* p) {
  __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
inline __m256i tail_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline vf vload(const float* p, int n) { return _mm256_maskload_ps(p, tail_mask(n)); }
inline vf vload(const uint16_t* p, int n) {
  alignas(32) uint16_t tmp[kW] = {0};
  for (int i = 0; i < n; ++i) tmp[i] = p[i];
  return vload(tmp);
}
inline void vstore(float* p, vf v) { _mm256_storeu_ps(p, v); }
inline void vstore(float* p, vf v, int n) { _mm256_maskstore_ps(p, tail_mask(n), v); }
inline __m128i to_bf16_bits(vf v) {
  __m256i u = _mm256_castps_si256(v);
  __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i bias = _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff));
  __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
  __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  __m256i b = _mm256_blendv_epi8(r, q, nan);
  __m256i packed = _mm256_packus_epi32(b, b);  // lanes: [0..3 0..3 | 4..7 4..7]
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}
inline void vstore(uint16_t* p, vf v) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), to_bf16_bits(v));
}
inline void vstore(uint16_t* p, vf v, int n) {
  alignas(16) uint16_t tmp[kW];
  _mm_store_si128(reinterpret_cast<__m128i*>(tmp), to_bf16_bits(v));
  for (int i = 0; i < n; ++i) p[i] = tmp[i];
}
inline vf vfmadd(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
inline vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
inline vf vmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
inline vf vdiv(vf a, vf b) { return _mm256_div_ps(a, b); }
inline vf vmax(vf a, vf b) { return _mm256_max_ps(a, b); }
inline vf vmin(vf a, vf b) { return _mm256_min_ps(a, b); }
inline vf vround(vf a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline float vreduce_add(vf a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float vreduce_max(vf a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline vf vexp2i(vf n) {
  __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}

#endif

// e^x with relative error ~1e-7 for x in [-87.3, 88.3]; inputs outside are clamped (so
// e^-inf returns ~1e-38, not 0). x = n*ln2 + r, |r| <= ln2/2, e^r by its degree-7 Taylor series.
inline vf vexp(vf x) {
  x = vmin(vmax(x, vset1(-87.3f)), vset1(88.3f));
  vf n = vround(vmul(x, vset1(1.44269504088896341f)));
  vf r = vfmadd(n, vset1(-0.693145751953125f), x);
  r = vfmadd(n, vset1(-1.428606765330187e-06f), r);
  vf p = vset1(1.0f / 5040.0f);
  p = vfmadd(p, r, vset1(1.0f / 720.0f));
  p = vfmadd(p, r, vset1(1.0f / 120.0f));
  p = vfmadd(p, r, vset1(1.0f / 24.0f));
  p = vfmadd(p, r, vset1(1.0f / 6.0f));
  p = vfmadd(p, r, vset1(0.5f));
  p = vfmadd(p, r, vset1(1.0f));
  p = vfmadd(p, r, vset1(1.0f));
  return vmul(p, vexp2i(n));
}

// dst[i] = src[i] for i < count, converting between float32 and bfloat16 (rounding to
// nearest even) as the pointer types say.
template <typename S, typename T>
void vconvert(const S* src, T* dst, int64_t count) {
  int64_t i = 0;
  for (; i + kW <= count; i += kW) vstore(dst + i, vload(src + i));
  if (i < count) {
    int rem = static_cast<int>(count - i);
    vstore(dst + i, vload(src + i, rem), rem);
  }
}

}  // namespace
}  // namespace cpu
}  // namespace pagedllm
