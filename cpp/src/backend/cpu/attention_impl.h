// Paged attention for one ISA tier (included once by attention_<isa>.cc); see AttentionPlan in
// cpu_kernels.h for the work decomposition. Invariants:
//  - a unit streams each cache block of its KV head once for all its query vectors (the tile's
//    rows x the group's query heads), widening a bfloat16 block to float32 once;
//  - each split keeps an online softmax (running max m, sum l, unnormalized acc) in float32;
//    splits are merged in split order by combine(), identically in both execution modes, so
//    the output does not depend on the thread count.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <limits>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"
#include "util/thread_pool.h"

namespace pagedllm {
namespace cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

inline float fmax_of(float a, float b) { return a < b ? b : a; }

// Softmax state of vectors_per_tile query vectors, carved from plan.partial_floats floats.
struct Partial {
  float* acc;  // [vectors_per_tile, D]
  float* m;    // [vectors_per_tile]
  float* l;    // [vectors_per_tile]
};

Partial partial_at(float* base, const AttentionPlan& plan) {
  int64_t vd = plan.vectors_per_tile * plan.head_dim;
  return {base, base + vd, base + vd + plan.vectors_per_tile};
}

// One (sequence, tile, KV head) unit.
struct Unit {
  int64_t b = 0, g = 0;
  int64_t token0 = 0;    // global index of the tile's first query row
  int64_t pos0 = 0;      // position of the tile's first query row
  int64_t rows = 0;      // query rows in the tile
  int64_t seq_len = 0;
  int64_t num_splits = 0;  // splits that hold keys visible to the tile
};

// Fills *u for (b, tile, g); false when the tile is empty.
bool make_unit(const PagedAttentionParams& p, const AttentionPlan& plan, int64_t b, int64_t tile,
               int64_t g, Unit* u) {
  const int32_t* qsl = p.query_start_loc.ptr<int32_t>();
  int64_t q_len = qsl[b + 1] - qsl[b];
  int64_t row0 = tile * plan.rows_per_tile;
  if (row0 >= q_len) return false;
  u->b = b;
  u->g = g;
  u->token0 = qsl[b] + row0;
  u->seq_len = p.seq_lens.ptr<int32_t>()[b];
  u->pos0 = u->seq_len - q_len + row0;
  u->rows = std::min(plan.rows_per_tile, q_len - row0);
  int64_t blocks = (u->pos0 + u->rows - 1) / plan.block_size + 1;
  u->num_splits = (blocks + plan.blocks_per_split - 1) / plan.blocks_per_split;
  return true;
}

// s[n] = scale * dot(q, k[n]) for n < count; k rows are d floats apart.
void qk_scores(const float* q, const float* k, int64_t d, int64_t count, float scale, float* s) {
  int64_t n = 0;
  int64_t dv = d / kW * kW;
  int rem = static_cast<int>(d - dv);
  for (; n + 4 <= count; n += 4) {
    const float* k0 = k + n * d;
    vf a0 = vzero(), a1 = vzero(), a2 = vzero(), a3 = vzero();
    for (int64_t i = 0; i < dv; i += kW) {
      vf qv = vload(q + i);
      a0 = vfmadd(qv, vload(k0 + i), a0);
      a1 = vfmadd(qv, vload(k0 + d + i), a1);
      a2 = vfmadd(qv, vload(k0 + 2 * d + i), a2);
      a3 = vfmadd(qv, vload(k0 + 3 * d + i), a3);
    }
    if (rem) {
      vf qv = vload(q + dv, rem);
      a0 = vfmadd(qv, vload(k0 + dv, rem), a0);
      a1 = vfmadd(qv, vload(k0 + d + dv, rem), a1);
      a2 = vfmadd(qv, vload(k0 + 2 * d + dv, rem), a2);
      a3 = vfmadd(qv, vload(k0 + 3 * d + dv, rem), a3);
    }
    s[n] = vreduce_add(a0) * scale;
    s[n + 1] = vreduce_add(a1) * scale;
    s[n + 2] = vreduce_add(a2) * scale;
    s[n + 3] = vreduce_add(a3) * scale;
  }
  for (; n < count; ++n) {
    const float* kn = k + n * d;
    vf a = vzero();
    for (int64_t i = 0; i < dv; i += kW) a = vfmadd(vload(q + i), vload(kn + i), a);
    if (rem) a = vfmadd(vload(q + dv, rem), vload(kn + dv, rem), a);
    s[n] = vreduce_add(a) * scale;
  }
}

// acc[:] += sum_n w[n] * v[n, :] for n < count; v rows are d floats apart.
void pv_accumulate(float* acc, const float* w, const float* v, int64_t count, int64_t d) {
  int64_t i = 0;
  for (; i + 4 * kW <= d; i += 4 * kW) {
    vf c0 = vload(acc + i), c1 = vload(acc + i + kW), c2 = vload(acc + i + 2 * kW),
       c3 = vload(acc + i + 3 * kW);
    for (int64_t n = 0; n < count; ++n) {
      vf wn = vset1(w[n]);
      const float* vn = v + n * d + i;
      c0 = vfmadd(wn, vload(vn), c0);
      c1 = vfmadd(wn, vload(vn + kW), c1);
      c2 = vfmadd(wn, vload(vn + 2 * kW), c2);
      c3 = vfmadd(wn, vload(vn + 3 * kW), c3);
    }
    vstore(acc + i, c0);
    vstore(acc + i + kW, c1);
    vstore(acc + i + 2 * kW, c2);
    vstore(acc + i + 3 * kW, c3);
  }
  for (; i < d; i += kW) {
    int len = static_cast<int>(std::min<int64_t>(kW, d - i));
    vf c = vload(acc + i, len);
    for (int64_t n = 0; n < count; ++n) c = vfmadd(vset1(w[n]), vload(v + n * d + i, len), c);
    vstore(acc + i, c, len);
  }
}

void scale_row(float* x, float alpha, int64_t d) {
  vf a = vset1(alpha);
  int64_t i = 0;
  for (; i + kW <= d; i += kW) vstore(x + i, vmul(vload(x + i), a));
  if (i < d) vstore(x + i, vmul(vload(x + i, static_cast<int>(d - i)), a), static_cast<int>(d - i));
}

// Online-softmax update of one query vector with scores s[0:count] (overwritten by weights).
void softmax_update(float* s, int64_t count, const float* v, int64_t d, float* acc, float* m,
                    float* l) {
  float mb = kNegInf;
  for (int64_t n = 0; n < count; ++n) mb = fmax_of(mb, s[n]);
  float m_new = fmax_of(*m, mb);
  if (m_new > *m) {
    float alpha = std::exp(*m - m_new);
    if (*l != 0.0f) scale_row(acc, alpha, d);
    *l *= alpha;
    *m = m_new;
  }
  vf mv = vset1(m_new);
  vf sum = vzero();
  int64_t n = 0;
  for (; n + kW <= count; n += kW) {
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
  pv_accumulate(acc, s, v, count, d);
}

template <typename C>
const float* block_rows(const C* src, float* buf, int64_t count);

template <>
const float* block_rows<float>(const float* src, float*, int64_t) {
  return src;
}

template <>
const float* block_rows<uint16_t>(const uint16_t* src, float* buf, int64_t count) {
  int64_t i = 0;
  for (; i + kW <= count; i += kW) vstore(buf + i, vload(src + i));
  if (i < count) vstore(buf + i, vload(src + i, static_cast<int>(count - i)), static_cast<int>(count - i));
  return buf;
}

// Computes split `split` of unit u into out. work: thread scratch past the two partials.
template <typename C>
void attend_split(const PagedAttentionParams& p, const AttentionPlan& plan, const Unit& u,
                  int64_t split, Partial out, float* work) {
  const int64_t d = plan.head_dim, bs = plan.block_size, group = plan.group;
  const int64_t nv = u.rows * group;
  for (int64_t v = 0; v < nv; ++v) {
    out.m[v] = kNegInf;
    out.l[v] = 0.0f;
    for (int64_t i = 0; i < d; ++i) out.acc[v * d + i] = 0.0f;
  }
  float* scores = work;                               // [block_size]
  float* kbuf = scores + (bs + 15) / 16 * 16;         // [block_size, D]
  float* vbuf = kbuf + (bs * d + 15) / 16 * 16;       // [block_size, D]
  const int32_t* table = p.block_tables.ptr<int32_t>() + u.b * p.block_tables.stride[0];
  int64_t last_pos = u.pos0 + u.rows - 1;
  int64_t blk_begin = split * plan.blocks_per_split;
  int64_t blk_end = std::min(blk_begin + plan.blocks_per_split, last_pos / bs + 1);
  for (int64_t j = blk_begin; j < blk_end; ++j) {
    int64_t key0 = j * bs;
    int64_t nk = std::min(bs, u.seq_len - key0);
    int64_t off = ((static_cast<int64_t>(table[j]) * plan.num_kv_heads + u.g) * bs) * d;
    const float* kb = block_rows<C>(p.k_cache.ptr<C>() + off, kbuf, nk * d);
    const float* vb = block_rows<C>(p.v_cache.ptr<C>() + off, vbuf, nk * d);
    for (int64_t r = 0; r < u.rows; ++r) {
      int64_t vis = std::min(nk, u.pos0 + r - key0 + 1);
      if (vis <= 0) continue;
      const float* qrow = p.q.ptr<float>() + (u.token0 + r) * p.q.stride[0];
      for (int64_t gh = 0; gh < group; ++gh) {
        int64_t v = r * group + gh;
        qk_scores(qrow + (u.g * group + gh) * p.q.stride[1], kb, d, vis, p.scale, scores);
        softmax_update(scores, vis, vb, d, out.acc + v * d, out.m + v, out.l + v);
      }
    }
  }
}

// run = merge(run, part) for nv vectors.
void combine(Partial run, Partial part, int64_t nv, int64_t d) {
  for (int64_t v = 0; v < nv; ++v) {
    if (part.m[v] == kNegInf) continue;
    float m = fmax_of(run.m[v], part.m[v]);
    float a = std::exp(run.m[v] - m);
    float b = std::exp(part.m[v] - m);
    run.l[v] = run.l[v] * a + part.l[v] * b;
    run.m[v] = m;
    float* x = run.acc + v * d;
    const float* y = part.acc + v * d;
    vf av = vset1(a), bv = vset1(b);
    int64_t i = 0;
    for (; i + kW <= d; i += kW) vstore(x + i, vfmadd(vload(y + i), bv, vmul(vload(x + i), av)));
    if (i < d) {
      int rem = static_cast<int>(d - i);
      vstore(x + i, vfmadd(vload(y + i, rem), bv, vmul(vload(x + i, rem), av)), rem);
    }
  }
}

void copy_floats(const float* src, float* dst, int64_t count) {
  int64_t i = 0;
  for (; i + kW <= count; i += kW) vstore(dst + i, vload(src + i));
  if (i < count) vstore(dst + i, vload(src + i, static_cast<int>(count - i)), static_cast<int>(count - i));
}

void copy_partial(Partial dst, Partial src, int64_t nv, int64_t d) {
  copy_floats(src.acc, dst.acc, nv * d);
  copy_floats(src.m, dst.m, nv);
  copy_floats(src.l, dst.l, nv);
}

void write_output(const PagedAttentionParams& p, const AttentionPlan& plan, const Unit& u,
                  Partial run) {
  const int64_t d = plan.head_dim;
  for (int64_t r = 0; r < u.rows; ++r) {
    float* orow = p.out.ptr<float>() + (u.token0 + r) * p.out.stride[0];
    for (int64_t gh = 0; gh < plan.group; ++gh) {
      int64_t v = r * plan.group + gh;
      float* o = orow + (u.g * plan.group + gh) * p.out.stride[1];
      copy_floats(run.acc + v * d, o, d);
      scale_row(o, 1.0f / run.l[v], d);
    }
  }
}

// Runs task(i, tid) for i in [0, n), handing out indices dynamically.
template <typename F>
void for_each_dynamic(ThreadPool& pool, int64_t n, const F& task) {
  std::atomic<int64_t> next{0};
  auto body = [&](int64_t, int64_t, int tid) {
    for (int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) task(i, tid);
  };
  pool.parallel_for(std::min<int64_t>(pool.num_threads(), n), 1, std::cref(body));
}

template <typename C>
void paged_attention_impl(const PagedAttentionParams& p, const AttentionPlan& plan,
                          const KernelContext& ctx) {
  PAGEDLLM_CHECK(ctx.scratch_floats >= plan.scratch_floats, "attention scratch too small");
  ThreadPool& pool = *ctx.pool;
  const int64_t hkv = plan.num_kv_heads, tiles = plan.max_tiles, d = plan.head_dim;
  auto thread_parts = [&](int tid, Partial* run, Partial* part, float** work) {
    float* base = ctx.scratch + tid * plan.thread_scratch_floats;
    *run = partial_at(base, plan);
    *part = partial_at(base + plan.partial_floats, plan);
    *work = base + 2 * plan.partial_floats;
  };
  const int64_t num_units = plan.num_seqs * tiles * hkv;
  if (!plan.split_parallel) {
    for_each_dynamic(pool, num_units, [&](int64_t i, int tid) {
      Unit u;
      if (!make_unit(p, plan, i / (tiles * hkv), i / hkv % tiles, i % hkv, &u)) return;
      Partial run, part;
      float* work;
      thread_parts(tid, &run, &part, &work);
      attend_split<C>(p, plan, u, 0, run, work);
      for (int64_t s = 1; s < u.num_splits; ++s) {
        attend_split<C>(p, plan, u, s, part, work);
        combine(run, part, u.rows * plan.group, d);
      }
      write_output(p, plan, u, run);
    });
    return;
  }
  float* partials = ctx.scratch + pool.num_threads() * plan.thread_scratch_floats;
  const int64_t splits = plan.max_splits;
  auto partial_of = [&](int64_t unit, int64_t s) {
    return partial_at(partials + (unit * splits + s) * plan.partial_floats, plan);
  };
  for_each_dynamic(pool, num_units * splits, [&](int64_t i, int tid) {
    int64_t unit = i / splits, s = i % splits;
    Unit u;
    if (!make_unit(p, plan, unit / (tiles * hkv), unit / hkv % tiles, unit % hkv, &u)) return;
    if (s >= u.num_splits) return;
    Partial run, part;
    float* work;
    thread_parts(tid, &run, &part, &work);
    attend_split<C>(p, plan, u, s, partial_of(unit, s), work);
  });
  for_each_dynamic(pool, num_units, [&](int64_t unit, int tid) {
    Unit u;
    if (!make_unit(p, plan, unit / (tiles * hkv), unit / hkv % tiles, unit % hkv, &u)) return;
    Partial run, part;
    float* work;
    thread_parts(tid, &run, &part, &work);
    int64_t nv = u.rows * plan.group;
    copy_partial(run, partial_of(unit, 0), nv, d);
    for (int64_t s = 1; s < u.num_splits; ++s) combine(run, partial_of(unit, s), nv, d);
    write_output(p, plan, u, run);
  });
}

}  // namespace
}  // namespace cpu
}  // namespace pagedllm
