// Per-split math of paged attention for one ISA tier (included by attention_impl.h): scores of
// a tile of query vectors against a tile of key vectors, the online-softmax update that folds
// a chunk's scores into a vector's running (max m, sum l, acc), and the weighted V accumulation
// over the chunk's blocks. All float32.
// kD is the head dim when known at compile time (constant key offsets), 0 for a run-time D.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "backend/cpu/simd.h"

namespace pagedllm {
namespace cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

inline float fmax_of(float a, float b) { return a < b ? b : a; }

// Query vectors x key vectors per QK register tile: 4 x 4 accumulators of 32 zmm, or 2 x 4 of
// 16 ymm (the K loads and a broadcast need registers too).
constexpr int kQkTileQ = kW == 16 ? 4 : 2;
constexpr int kQkTileK = 4;

// Key vectors of a chunk: kW (or fewer, `lanes`) consecutive keys of one block, read from the
// block's transposed K ([D, bs], see write_kv_cache): dim i of the vector's keys is at
// kt + i * bs. Their scores go to s[off : off + lanes] of every query vector.
template <typename T>
struct KeyVector {
  const T* kt;
  int64_t off;
  int lanes;
};

// s_t[kv_x.off + j] = scale * dot(q_t, key j of kv_x) for t < QT, x < KT, j < kv_x.lanes: one
// key per lane, the dot an fma chain over i = 0 .. D-1 in order (no horizontal sums), so a
// score does not depend on the tile it was computed in. kMasked: some vectors have fewer than
// kW lanes (only their lanes are read and written).
template <int kD, int QT, int KT, bool kMasked, typename T>
void qk_tile(const float* const* q, float* const* s, const KeyVector<T>* kv, int64_t bs,
             int64_t d_rt, float scale) {
  const int64_t d = kD ? kD : d_rt;
  vf acc[QT][KT];
#pragma GCC unroll 8
  for (int t = 0; t < QT; ++t)
#pragma GCC unroll 8
    for (int x = 0; x < KT; ++x) acc[t][x] = vzero();
  for (int64_t i = 0; i < d; ++i) {
    vf k[KT];
#pragma GCC unroll 8
    for (int x = 0; x < KT; ++x)
      k[x] = kMasked ? vload(kv[x].kt + i * bs, kv[x].lanes) : vload(kv[x].kt + i * bs);
#pragma GCC unroll 8
    for (int t = 0; t < QT; ++t) {
      vf qi = vset1(q[t][i]);
#pragma GCC unroll 8
      for (int x = 0; x < KT; ++x) acc[t][x] = vfmadd(qi, k[x], acc[t][x]);
    }
  }
  const vf sc = vset1(scale);
#pragma GCC unroll 8
  for (int t = 0; t < QT; ++t)
#pragma GCC unroll 8
    for (int x = 0; x < KT; ++x) {
      if (kMasked) {
        vstore(s[t] + kv[x].off, vmul(acc[t][x], sc), kv[x].lanes);
      } else {
        vstore(s[t] + kv[x].off, vmul(acc[t][x], sc));
      }
    }
}

// qk_tile for run-time counts nq <= kQkTileQ, nk <= kQkTileK.
template <int kD, int QT, int KT, typename T>
void qk_tile_any(int nq, int nk, bool masked, const float* const* q, float* const* s,
                 const KeyVector<T>* kv, int64_t bs, int64_t d, float scale) {
  if constexpr (QT > 1) {
    if (nq < QT) return qk_tile_any<kD, QT - 1, KT>(nq, nk, masked, q, s, kv, bs, d, scale);
  }
  if constexpr (KT > 1) {
    if (nk < KT) return qk_tile_any<kD, QT, KT - 1>(nq, nk, masked, q, s, kv, bs, d, scale);
  }
  if (masked) {
    qk_tile<kD, QT, KT, true>(q, s, kv, bs, d, scale);
  } else {
    qk_tile<kD, QT, KT, false>(q, s, kv, bs, d, scale);
  }
}

// acc[i0 : i0 + NB * kW] += sum over keys n < count of w[n] * V(n)[i0 : ...], where key n is
// row n % bs of block vblock(n / bs) ([bs, D], float32 or bfloat16); acc stays in registers
// for all blocks.
template <int kD, int NB, typename VBlock>
void pv_cols(float* acc, const float* w, int64_t count, int64_t bs, int64_t d_rt, int64_t i0,
             const VBlock& vblock) {
  const int64_t d = kD ? kD : d_rt;
  vf c[NB];
#pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) c[b] = vload(acc + i0 + b * kW);
  for (int64_t n0 = 0, j = 0; n0 < count; n0 += bs, ++j) {
    const auto* v = vblock(j) + i0;
    const int64_t nk = std::min(bs, count - n0);
    for (int64_t n = 0; n < nk; ++n) {
      vf wn = vset1(w[n0 + n]);
#pragma GCC unroll 8
      for (int b = 0; b < NB; ++b) c[b] = vfmadd(wn, vload(v + n * d + b * kW), c[b]);
    }
  }
#pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) vstore(acc + i0 + b * kW, c[b]);
}

// acc[:] += sum_n w[n] * V(n) for n < count, keys in blocks of bs (see pv_cols).
template <int kD, typename VBlock>
void pv_accumulate(float* acc, const float* w, int64_t count, int64_t bs, int64_t d_rt,
                   const VBlock& vblock) {
  const int64_t d = kD ? kD : d_rt;
  int64_t i = 0;
  for (; i + 8 * kW <= d; i += 8 * kW) pv_cols<kD, 8>(acc, w, count, bs, d, i, vblock);
  for (; i + 4 * kW <= d; i += 4 * kW) pv_cols<kD, 4>(acc, w, count, bs, d, i, vblock);
  for (; i + kW <= d; i += kW) pv_cols<kD, 1>(acc, w, count, bs, d, i, vblock);
  if (i < d) {
    int rem = static_cast<int>(d - i);
    vf c = vload(acc + i, rem);
    for (int64_t n0 = 0, j = 0; n0 < count; n0 += bs, ++j) {
      const auto* v = vblock(j) + i;
      for (int64_t n = 0; n < std::min(bs, count - n0); ++n)
        c = vfmadd(vset1(w[n0 + n]), vload(v + n * d, rem), c);
    }
    vstore(acc + i, c, rem);
  }
}

// For h < H: acc[h][i0 : i0 + NB * kW] += sum over keys n < count of w[h][n] * V(n)[i0 : ...]
// (V(n) as in pv_cols). The H vectors share each V load; every acc element sums its keys in
// the same order as pv_cols, so the result is bitwise that of H pv_cols calls.
template <int kD, int NB, int H, typename VBlock>
void pv_cols_heads(float* const* acc, const float* const* w, int64_t count, int64_t bs,
                   int64_t d_rt, int64_t i0, const VBlock& vblock) {
  const int64_t d = kD ? kD : d_rt;
  vf c[H][NB];
#pragma GCC unroll 8
  for (int h = 0; h < H; ++h)
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) c[h][b] = vload(acc[h] + i0 + b * kW);
  for (int64_t n0 = 0, j = 0; n0 < count; n0 += bs, ++j) {
    const auto* v = vblock(j) + i0;
    const int64_t nk = std::min(bs, count - n0);
    for (int64_t n = 0; n < nk; ++n) {
      vf vv[NB];
#pragma GCC unroll 8
      for (int b = 0; b < NB; ++b) vv[b] = vload(v + n * d + b * kW);
#pragma GCC unroll 8
      for (int h = 0; h < H; ++h) {
        vf wn = vset1(w[h][n0 + n]);
#pragma GCC unroll 8
        for (int b = 0; b < NB; ++b) c[h][b] = vfmadd(wn, vv[b], c[h][b]);
      }
    }
  }
#pragma GCC unroll 8
  for (int h = 0; h < H; ++h)
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) vstore(acc[h] + i0 + b * kW, c[h][b]);
}

// Heads of a P.V register tile: kHeadTile x 4 accumulators (16 of 32 zmm, or 8 of 16 ymm).
constexpr int kHeadTile = kW == 16 ? 4 : 2;

// pv_accumulate for kHeadTile vectors at once (acc[h], w[h]); bitwise equal to kHeadTile
// pv_accumulate calls.
template <int kD, typename VBlock>
void pv_accumulate_heads(float* const* acc, const float* const* w, int64_t count, int64_t bs,
                         int64_t d_rt, const VBlock& vblock) {
  const int64_t d = kD ? kD : d_rt;
  int64_t i = 0;
  for (; i + 4 * kW <= d; i += 4 * kW)
    pv_cols_heads<kD, 4, kHeadTile>(acc, w, count, bs, d, i, vblock);
  for (; i + kW <= d; i += kW) pv_cols_heads<kD, 1, kHeadTile>(acc, w, count, bs, d, i, vblock);
  if (i < d) {
    int rem = static_cast<int>(d - i);
    for (int h = 0; h < kHeadTile; ++h) {
      vf c = vload(acc[h] + i, rem);
      for (int64_t n0 = 0, j = 0; n0 < count; n0 += bs, ++j) {
        const auto* v = vblock(j) + i;
        for (int64_t n = 0; n < std::min(bs, count - n0); ++n)
          c = vfmadd(vset1(w[h][n0 + n]), vload(v + n * d, rem), c);
      }
      vstore(acc[h] + i, c, rem);
    }
  }
}

void scale_row(float* x, float alpha, int64_t d) {
  vf a = vset1(alpha);
  int64_t i = 0;
  for (; i + kW <= d; i += kW) vstore(x + i, vmul(vload(x + i), a));
  if (i < d) vstore(x + i, vmul(vload(x + i, static_cast<int>(d - i)), a), static_cast<int>(d - i));
}

// Online-softmax update of one query vector with scores s[0:count] (overwritten by their
// weights exp(s - m)); rescales acc when the running max grows. The caller then adds the
// weighted values to acc.
inline void softmax_update(float* s, int64_t count, int64_t d, float* acc, float* m, float* l) {
  float mb = kNegInf;
  int64_t n = 0;
  if (count >= kW) {
    vf mv = vload(s);
    for (n = kW; n + kW <= count; n += kW) mv = vmax(mv, vload(s + n));
    mb = vreduce_max(mv);
  }
  for (; n < count; ++n) mb = fmax_of(mb, s[n]);
  float m_new = fmax_of(*m, mb);
  if (m_new > *m) {
    float alpha = std::exp(*m - m_new);
    if (*l != 0.0f) scale_row(acc, alpha, d);
    *l *= alpha;
    *m = m_new;
  }
  vf mv = vset1(m_new);
  vf sum = vzero();
  for (n = 0; n + kW <= count; n += kW) {
    vf e = vexp(vsub(vload(s + n), mv));
    vstore(s + n, e);
    sum = vadd(sum, e);
  }
  if (n < count) {
    int rem = static_cast<int>(count - n);
    vf e = vexp(vsub(vload(s + n, rem), mv));
    vstore(s + n, e, rem);
    sum = vadd(sum, vload(s + n, rem));
  }
  *l += vreduce_add(sum);
}

template <typename C>
const float* block_rows(const C* src, float* buf, int64_t count);

template <>
const float* block_rows<float>(const float* src, float*, int64_t) {
  return src;
}

template <>
const float* block_rows<uint16_t>(const uint16_t* src, float* buf, int64_t count) {
  vconvert(src, buf, count);
  return buf;
}

}  // namespace
}  // namespace cpu
}  // namespace pagedllm
