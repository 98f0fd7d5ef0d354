// out = x @ W^T (+ bias) on a packed weight (packed_weight.h), for one ISA tier (included once
// by packed_linear_<isa>.cc). Register tiles of MR activation rows x NP panels (32 columns
// each); weights are widened to float32 in registers, activations stay float32.
// Numerical contract: every output element is acc = fma(x[k], w[k], acc) for k = 0 .. K-1 in
// order, from acc = 0, then + bias. No tile shape, row count M, thread count or ISA tier
// changes that sequence, so a row's result is bit-identical whatever batch it is computed in.
#pragma once

#include <algorithm>
#include <functional>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/packed_weight.h"
#include "backend/cpu/simd.h"
#include "util/thread_pool.h"

namespace pagedllm {
namespace cpu {
namespace {

constexpr int kPV = static_cast<int>(kPanelCols) / kW;  // vectors per panel row
#if defined(__AVX512F__)
constexpr int kMaxTileRows = 12;  // 12 x 2 accumulators + 2 weight vectors of 32 zmm
#else
constexpr int kMaxTileRows = 3;   // 3 x 4 accumulators + 3 broadcasts + 1 weight of 16 ymm
#endif
constexpr int64_t kBlockRows = 8 * kMaxTileRows;  // rows per task block (stay in L2)

// Panels per register tile for MR rows: enough independent accumulators to hide FMA latency.
template <int MR>
constexpr int tile_panels() {
  if (kW == 16) return MR >= 7 ? 1 : MR >= 5 ? 2 : MR >= 3 ? 3 : 4;
  return MR >= 2 ? 1 : 2;
}

// The kPV float32 vectors of one packed panel row (32 columns in order).
inline void load_panel(const float* p, vf* v) {
  for (int i = 0; i < kPV; ++i) v[i] = vload(p + i * kW);
}
inline void load_panel(const uint16_t* p, vf* v) {
#if defined(__AVX512F__)
  __m512i w = _mm512_loadu_si512(p);
  v[0] = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  v[1] = _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
#else
  __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16));
  const __m256i hi = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  v[0] = _mm256_castsi256_ps(_mm256_slli_epi32(a, 16));
  v[1] = _mm256_castsi256_ps(_mm256_slli_epi32(b, 16));
  v[2] = _mm256_castsi256_ps(_mm256_and_si256(a, hi));
  v[3] = _mm256_castsi256_ps(_mm256_and_si256(b, hi));
#endif
}

struct PackedArgs {
  const float* x;  // [M, K], row stride ldx
  int64_t ldx;
  const void* w;  // [P, K, 32] packed, float32 or bfloat16
  const float* bias_f32;     // [N] or nullptr
  const uint16_t* bias_b16;  // [N] or nullptr
  float* out;  // [M, N], row stride ldo
  int64_t ldo;
  int64_t m, n, k, panels;
};

// Which of the T row tiles over the same panels this is: tile t prefetches the k rows
// r = t (mod T) of the next panels, so the T tiles fetch them once between them, spread over
// the whole time the current panels compute (the first tile alone asked for them faster than
// memory delivers: fp32 decode at M = 32 ran its first tile 2.4x slower than the others).
struct PrefetchShare {
  int64_t t = 0, T = 1;
};

// Rows [m0, m0 + MR) x panels [p, p + NP). kPrefetch: also prefetches its share of panels
// [p + NP, p + 2NP) into L2, so the next panels' weights stream from memory while these
// compute (one weight stream alone is latency bound).
template <int MR, int NP, typename W, bool kPrefetch>
void packed_tile(const PackedArgs& a, int64_t m0, int64_t p, PrefetchShare share) {
  constexpr int NV = NP * kPV;
  const W* w = static_cast<const W*>(a.w) + p * a.k * kPanelCols;
  const int64_t panel_stride = a.k * kPanelCols;
  const float* x = a.x + m0 * a.ldx;
  vf acc[MR][NV];
#pragma GCC unroll 16
  for (int mi = 0; mi < MR; ++mi)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[mi][v] = vzero();
  constexpr int kLines = static_cast<int>(kPanelCols * sizeof(W) / 64);  // cache lines per k
  const char* pf = reinterpret_cast<const char*>(w + NP * panel_stride);
  int64_t next_pf = share.t;
  for (int64_t kk = 0; kk < a.k; ++kk) {
    if (kPrefetch && kk == next_pf) {  // this tile's share of the next panels' k rows
      next_pf += share.T;
#pragma GCC unroll 4
      for (int q = 0; q < NP; ++q)
#pragma GCC unroll 2
        for (int l = 0; l < kLines; ++l)
          _mm_prefetch(pf + ((q * panel_stride + kk * kPanelCols) * sizeof(W)) + 64 * l, _MM_HINT_T1);
    }
    vf wv[NV];
#pragma GCC unroll 4
    for (int q = 0; q < NP; ++q) load_panel(w + q * panel_stride + kk * kPanelCols, wv + q * kPV);
#pragma GCC unroll 16
    for (int mi = 0; mi < MR; ++mi) {
      vf xb = vset1(x[mi * a.ldx + kk]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[mi][v] = vfmadd(xb, wv[v], acc[mi][v]);
    }
  }
  const int64_t c0 = p * kPanelCols;
  for (int v = 0; v < NV; ++v) {
    const int64_t c = c0 + v * kW;
    if (c >= a.n) break;
    const int rem = static_cast<int>(std::min<int64_t>(kW, a.n - c));
    vf b = vzero();
    if (a.bias_f32) b = rem == kW ? vload(a.bias_f32 + c) : vload(a.bias_f32 + c, rem);
    if (a.bias_b16) b = rem == kW ? vload(a.bias_b16 + c) : vload(a.bias_b16 + c, rem);
    const bool has_bias = a.bias_f32 || a.bias_b16;
    for (int mi = 0; mi < MR; ++mi) {
      vf r = has_bias ? vadd(acc[mi][v], b) : acc[mi][v];
      float* o = a.out + (m0 + mi) * a.ldo + c;
      if (rem == kW) {
        vstore(o, r);
      } else {
        vstore(o, r, rem);
      }
    }
  }
}

// Rows [m0, m0 + MR) x panels [p0, p1), row tile `share` of the tiles over these panels.
template <int MR, typename W>
void packed_rows(const PackedArgs& a, int64_t m0, int64_t p0, int64_t p1, PrefetchShare share) {
  constexpr int NP = tile_panels<MR>();
  int64_t p = p0;
  for (; p + NP <= p1; p += NP) {
    if (p + 2 * NP <= a.panels) {
      packed_tile<MR, NP, W, true>(a, m0, p, share);
    } else {
      packed_tile<MR, NP, W, false>(a, m0, p, share);
    }
  }
  for (; p < p1; ++p) {
    if (p + 2 <= a.panels) {
      packed_tile<MR, 1, W, true>(a, m0, p, share);
    } else {
      packed_tile<MR, 1, W, false>(a, m0, p, share);
    }
  }
}

// packed_rows for a run-time row count r in [1, MR].
template <int MR, typename W>
void packed_rows_any(int r, const PackedArgs& a, int64_t m0, int64_t p0, int64_t p1, PrefetchShare share) {
  if constexpr (MR > 1) {
    if (r < MR) return packed_rows_any<MR - 1, W>(r, a, m0, p0, p1, share);
  }
  packed_rows<MR, W>(a, m0, p0, p1, share);
}

template <int MR>
constexpr int max_tile_panels() {
  return tile_panels<MR>() > (MR > 1 ? max_tile_panels<MR - 1>() : 0)
             ? tile_panels<MR>()
             : max_tile_panels<MR - 1>();
}
template <>
constexpr int max_tile_panels<0>() { return 0; }

// Rows [m0, m1) (at most kBlockRows) x panels [p0, p1): the rows in near-equal register tiles;
// panels outermost so each packed panel is read from memory once and reused from cache by
// every row tile.
template <typename W>
void packed_block(const PackedArgs& a, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
  const int64_t rows = m1 - m0;
  const int64_t tiles = (rows + kMaxTileRows - 1) / kMaxTileRows;
  const int64_t step = tiles == 1 ? std::max<int64_t>(1, max_tile_panels<kMaxTileRows>()) : 1;
  for (int64_t p = p0; p < p1; p += step) {
    const int64_t pe = std::min(p1, p + step);
    int64_t r0 = m0;
    for (int64_t t = 0; t < tiles; ++t) {
      const int r = static_cast<int>(rows / tiles + (t < rows % tiles ? 1 : 0));
      packed_rows_any<kMaxTileRows, W>(r, a, r0, p, pe, PrefetchShare{t, tiles});
      r0 += r;
    }
  }
}

// The shared packed-linear body of every tier. Work items: (row block, panel), row block
// major; a thread takes a contiguous range of them.
void packed_linear_generic(const LinearParams& p, const KernelContext& ctx) {
  PackedArgs a{p.x.ptr<float>(), p.x.stride[0], p.weight.data, nullptr, nullptr,
               p.out.ptr<float>(), p.out.stride[0], p.x.shape[0], p.out.shape[1],
               p.x.shape[1], p.weight.shape[0]};
  if (p.bias.data != nullptr) {
    if (p.bias.dtype == DType::kBFloat16) {
      a.bias_b16 = p.bias.ptr<uint16_t>();
    } else {
      a.bias_f32 = p.bias.ptr<float>();
    }
  }
  const bool bf16 = p.weight.dtype == DType::kBFloat16;
  const int64_t blocks = (a.m + kBlockRows - 1) / kBlockRows;
  const int64_t block_rows = std::min(a.m, kBlockRows);
  const int64_t flops_per_item = 2 * block_rows * a.k * kPanelCols;
  const int64_t min_items = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(flops_per_item, 1));
  auto body = [&](int64_t i0, int64_t i1, int) {
    while (i0 < i1) {
      const int64_t b = i0 / a.panels;
      const int64_t pe = std::min(i1, (b + 1) * a.panels);
      const int64_t m0 = b * kBlockRows;
      if (bf16) {
        packed_block<uint16_t>(a, m0, std::min(a.m, m0 + kBlockRows), i0 - b * a.panels, pe - b * a.panels);
      } else {
        packed_block<float>(a, m0, std::min(a.m, m0 + kBlockRows), i0 - b * a.panels, pe - b * a.panels);
      }
      i0 = pe;
    }
  };
  ctx.pool->parallel_for(blocks * a.panels, min_items, std::cref(body));
}

}  // namespace
}  // namespace cpu
}  // namespace pagedllm
