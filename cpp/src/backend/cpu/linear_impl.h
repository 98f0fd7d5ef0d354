// out = x @ weight^T (+ bias) for one ISA tier (included once by linear_<isa>.cc). Every
// output element is computed by one thread, in an order fixed by the shape alone, so results
// do not depend on the thread count.
//   M <= linear_direct_max_m(): direct kernel over column ranges; register tiles of MT
//   activation rows x NT weight rows.
//   larger M: single-threaded sgemm per tile of linear_tiling(); a bfloat16 weight panel is
//   widened to float32 in the thread's scratch first.
#pragma once

#include <algorithm>
#include <functional>

#include "backend/cpu/blas.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"
#include "util/thread_pool.h"

namespace pagedllm {
namespace cpu {
namespace {

struct LinearArgs {
  const float* x;   // [M, K], row stride ldx
  int64_t ldx;
  const void* w;    // [N, K] contiguous, float32 or bfloat16
  const void* bias; // [N] float32 or bfloat16 (bias_bf16), or nullptr
  bool bias_bf16;
  float* out;       // [M, N], row stride ldo
  int64_t ldo;
  int64_t m, n, k;
};

LinearArgs linear_args(const LinearParams& p) {
  return {p.x.ptr<float>(), p.x.stride[0], p.weight.data, p.bias.data,
          p.bias.dtype == DType::kBFloat16, p.out.ptr<float>(), p.out.stride[0],
          p.x.shape[0], p.weight.shape[0], p.weight.shape[1]};
}

template <int MT, int NT, typename W>
void small_m_tile(const float* x, int64_t ldx, const W* w, int64_t k, float* out, int64_t ldo) {
  vf acc[MT][NT];
#pragma GCC unroll 4
  for (int mi = 0; mi < MT; ++mi)
#pragma GCC unroll 8
    for (int ni = 0; ni < NT; ++ni) acc[mi][ni] = vzero();
  int64_t kk = 0;
  for (; kk + kW <= k; kk += kW) {
    vf wv[NT];
#pragma GCC unroll 8
    for (int ni = 0; ni < NT; ++ni) wv[ni] = vload(w + ni * k + kk);
#pragma GCC unroll 4
    for (int mi = 0; mi < MT; ++mi) {
      vf xv = vload(x + mi * ldx + kk);
#pragma GCC unroll 8
      for (int ni = 0; ni < NT; ++ni) acc[mi][ni] = vfmadd(xv, wv[ni], acc[mi][ni]);
    }
  }
  if (kk < k) {
    int rem = static_cast<int>(k - kk);
    for (int mi = 0; mi < MT; ++mi) {
      vf xv = vload(x + mi * ldx + kk, rem);
      for (int ni = 0; ni < NT; ++ni)
        acc[mi][ni] = vfmadd(xv, vload(w + ni * k + kk, rem), acc[mi][ni]);
    }
  }
  for (int mi = 0; mi < MT; ++mi)
    for (int ni = 0; ni < NT; ++ni) out[mi * ldo + ni] = vreduce_add(acc[mi][ni]);
}

// Weight rows per register tile for MT activation rows (fits 16 ymm / 32 zmm registers).
template <int MT>
constexpr int small_m_nt() {
  return MT == 1 ? (kW == 16 ? 8 : 4) : (kW == 16 ? 4 : (MT <= 2 ? 4 : 2));
}

template <int MT, typename W>
void small_m_rows(const LinearArgs& a, int64_t m0, int64_t n0, int64_t n1) {
  constexpr int NT = small_m_nt<MT>();
  const W* w = static_cast<const W*>(a.w);
  const float* x = a.x + m0 * a.ldx;
  float* out = a.out + m0 * a.ldo;
  int64_t j = n0;
  for (; j + NT <= n1; j += NT) small_m_tile<MT, NT>(x, a.ldx, w + j * a.k, a.k, out + j, a.ldo);
  for (; j < n1; ++j) small_m_tile<MT, 1>(x, a.ldx, w + j * a.k, a.k, out + j, a.ldo);
}

// Columns [n0, n1) for all rows: weight rows in chunks of 8, each read from memory once and
// reused from cache by every group of up to 4 activation rows.
template <typename W>
void small_m_range(const LinearArgs& a, int64_t n0, int64_t n1) {
  for (int64_t c0 = n0; c0 < n1; c0 += 8) {
    int64_t c1 = std::min(n1, c0 + 8);
    for (int64_t m0 = 0; m0 < a.m; m0 += 4) {
      switch (std::min<int64_t>(4, a.m - m0)) {
        case 1: small_m_rows<1, W>(a, m0, c0, c1); break;
        case 2: small_m_rows<2, W>(a, m0, c0, c1); break;
        case 3: small_m_rows<3, W>(a, m0, c0, c1); break;
        default: small_m_rows<4, W>(a, m0, c0, c1); break;
      }
    }
  }
}

template <typename W>
void add_bias_range(const LinearArgs& a, int64_t n0, int64_t n1) {
  const W* bias = static_cast<const W*>(a.bias);
  for (int64_t i = 0; i < a.m; ++i) {
    float* o = a.out + i * a.ldo;
    int64_t j = n0;
    for (; j + kW <= n1; j += kW) vstore(o + j, vadd(vload(o + j), vload(bias + j)));
    if (j < n1) {
      int rem = static_cast<int>(n1 - j);
      vstore(o + j, vadd(vload(o + j, rem), vload(bias + j, rem)), rem);
    }
  }
}

void add_bias(const LinearArgs& a, int64_t n0, int64_t n1) {
  if (a.bias == nullptr) return;
  if (a.bias_bf16) {
    add_bias_range<uint16_t>(a, n0, n1);
  } else {
    add_bias_range<float>(a, n0, n1);
  }
}

void sgemm_range(const LinearArgs& a, const float* w, int64_t ldw, int64_t n0, int64_t n1) {
  blas::sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(a.m),
              static_cast<blasint>(n1 - n0), static_cast<blasint>(a.k), 1.0f, a.x,
              static_cast<blasint>(a.ldx), w, static_cast<blasint>(ldw), 0.0f, a.out + n0,
              static_cast<blasint>(a.ldo));
}

// Large M: out[i0:i1, j0:j1] by sgemm. A bfloat16 weight panel (rows [j0, j1)) is widened
// into `panel` ([nt, K] float32) unless it already holds it (*cached == j0).
void sgemm_tile(const LinearArgs& a, bool bf16, float* panel, int64_t* cached, int64_t i0,
                int64_t i1, int64_t j0, int64_t j1) {
  const float* w = static_cast<const float*>(a.w) + j0 * a.k;
  if (bf16) {
    if (*cached != j0) vconvert(static_cast<const uint16_t*>(a.w) + j0 * a.k, panel, (j1 - j0) * a.k);
    *cached = j0;
    w = panel;
  }
  LinearArgs rows = a;
  rows.x = a.x + i0 * a.ldx;
  rows.out = a.out + i0 * a.ldo;
  rows.m = i1 - i0;
  sgemm_range(rows, w, a.k, j0, j1);
  add_bias(rows, j0, j1);
}

// The shared linear body of every tier.
void linear_generic(const LinearParams& p, const KernelContext& ctx) {
  LinearArgs a = linear_args(p);
  bool bf16 = p.weight.dtype == DType::kBFloat16;
  ThreadPool& pool = *ctx.pool;
  if (a.m <= linear_direct_max_m(p.weight.dtype, kW)) {
    int64_t min_cols = std::max<int64_t>(16, 4096 / std::max<int64_t>(a.k, 1));
    auto body = [&](int64_t n0, int64_t n1, int) {
      if (bf16) {
        small_m_range<uint16_t>(a, n0, n1);
      } else {
        small_m_range<float>(a, n0, n1);
      }
      add_bias(a, n0, n1);
    };
    pool.parallel_for(a.n, min_cols, std::cref(body));
    return;
  }
  const LinearTiling t = linear_tiling(a.m, a.n);
  const int64_t stride = t.nt * ((a.k + 15) / 16 * 16);
  PAGEDLLM_CHECK(!bf16 || ctx.scratch_floats >= pool.num_threads() * stride,
                 "linear scratch too small");
  auto body = [&](int64_t t0, int64_t t1, int tid) {
    int64_t cached = -1;
    for (int64_t i = t0; i < t1; ++i) {
      int64_t j0 = i / t.tiles_m * t.nt, i0 = i % t.tiles_m * t.mt;
      sgemm_tile(a, bf16, ctx.scratch + tid * stride, &cached, i0, std::min(a.m, i0 + t.mt), j0,
                 std::min(a.n, j0 + t.nt));
    }
  };
  pool.parallel_for(t.tiles_m * t.tiles_n, 1, std::cref(body));
}

}  // namespace
}  // namespace cpu
}  // namespace pagedllm
