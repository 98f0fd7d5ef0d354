// Paged attention for one ISA tier (included once by attention_<isa>.cc); see AttentionPlan in
// cpu_kernels.h for the work decomposition. Invariants:
//  - a unit visits each chunk of ~64 keys of its KV head for all its query vectors (the tile's
//    rows x the group's query heads) in turn, so the chunk's K/V stay in L1; scores come from
//    register tiles of query vectors x key vectors on the transposed K of the cache; a bfloat16
//    split is widened to float32 once when the vectors pass over it more than once; P.V runs
//    for kHeadTile query heads of a row at once (one V load per tile);
//  - every score is an fma chain over the head dim in order and every P.V element sums its
//    keys in order, whatever the tile shapes, so a row's output does not depend on the batch;
//  - each split keeps an online softmax (running max m, sum l, unnormalized acc) in float32;
//    splits are merged in split order by combine(), identically in both execution modes, so
//    the output does not depend on the thread count.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <type_traits>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/attention_block.h"
#include "util/thread_pool.h"

namespace pagedllm {
namespace cpu {
namespace {

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

// Prefetches the cache lines of n elements at p into L1.
template <typename T>
inline void prefetch_lines(const T* p, int64_t n) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t b = 0; b < n * static_cast<int64_t>(sizeof(T)); b += 64) _mm_prefetch(c + b, _MM_HINT_T0);
}

// Computes split `split` of unit u into out, chunk by chunk of plan.chunk_blocks blocks
// (~kAttnChunkKeys keys, whose K and V stay in L1 for all the unit's vectors): the scores of
// every query vector that sees the chunk in QK register tiles (query vectors x key vectors,
// K read transposed, see write_kv_cache), then per row one softmax update per vector and P.V
// for kHeadTile heads at once (one V load per tile).
// A bfloat16 split is widened to float32 once when the unit's vectors pass over it more than
// once (more than one QK query tile), else read as bfloat16 and widened in registers (same
// values either way). work: thread scratch past the partials.
template <typename C, int kD>
void attend_split(const PagedAttentionParams& p, const AttentionPlan& plan, const Unit& u,
                  int64_t split, Partial out, float* work) {
  const int64_t d = kD ? kD : plan.head_dim, bs = plan.block_size, group = plan.group;
  const int64_t nv = u.rows * group;
  for (int64_t v = 0; v < nv; ++v) {
    out.m[v] = kNegInf;
    out.l[v] = 0.0f;
    for (int64_t i = 0; i < d; ++i) out.acc[v * d + i] = 0.0f;
  }
  const int64_t split_keys = plan.blocks_per_split * bs;
  const int64_t ck = plan.chunk_blocks * bs;  // score slots per vector
  float* scores = work;                                                // [nv, ck]
  float* kbuf = scores + (plan.vectors_per_tile * ck + 15) / 16 * 16;  // [blocks, D, bs]
  float* vbuf = kbuf + (split_keys * d + 15) / 16 * 16;                // [blocks, bs, D]
  const int32_t* table = p.block_tables.ptr<int32_t>() + u.b * p.block_tables.stride[0];
  const int64_t last_pos = u.pos0 + u.rows - 1;
  const int64_t blk_begin = split * plan.blocks_per_split;
  const int64_t blk_end = std::min(blk_begin + plan.blocks_per_split, last_pos / bs + 1);
  const int64_t key_begin = blk_begin * bs;
  const int64_t key_end = std::min(u.seq_len, blk_end * bs);
  auto cache_offset = [&](int64_t j) {  // block j of the split: [D, bs] of K, [bs, D] of V
    return ((static_cast<int64_t>(table[blk_begin + j]) * plan.num_kv_heads + u.g) * bs) * d;
  };
  const bool widen = !std::is_same<C, float>::value && nv > kQkTileQ;
  if (widen) {
    for (int64_t j = 0; j < blk_end - blk_begin; ++j) {
      int64_t nk = std::min(bs, u.seq_len - key_begin - j * bs);
      block_rows<C>(p.k_cache.ptr<C>() + cache_offset(j), kbuf + j * bs * d, bs * d);
      block_rows<C>(p.v_cache.ptr<C>() + cache_offset(j), vbuf + j * bs * d, nk * d);
    }
  }
  auto query = [&](int64_t v) {  // query vector v = (row v / group, head v % group)
    return p.q.ptr<float>() + (u.token0 + v / group) * p.q.stride[0] +
           (u.g * group + v % group) * p.q.stride[1];
  };
  auto run = [&](auto kblock, auto vblock) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(kblock(0))>>;
    for (int64_t j0 = 0; j0 < blk_end - blk_begin; j0 += plan.chunk_blocks) {
      const int64_t cb = std::min(plan.chunk_blocks, blk_end - blk_begin - j0);
      const int64_t c0 = key_begin + j0 * bs;  // the chunk's first key
      auto count_of = [&](int64_t r) {  // keys of the chunk row r sees
        return std::min(std::min(key_end, u.pos0 + r + 1), c0 + cb * bs) - c0;
      };
      int64_t r_first = 0;  // rows see more keys as r grows
      while (r_first < u.rows && count_of(r_first) <= 0) ++r_first;
      if (r_first == u.rows) break;  // later chunks are further right
      const int64_t max_count = count_of(u.rows - 1);
      // The next chunk's K and V blocks are scattered in memory (paged): fetch them into L1
      // while this chunk computes (a decode reads each K/V element once, from memory).
      for (int64_t j = j0 + cb; j < std::min(j0 + cb + plan.chunk_blocks, blk_end - blk_begin); ++j) {
        prefetch_lines(kblock(j), bs * d);
        prefetch_lines(vblock(j), bs * d);
      }
      // Scores of vectors [r_first * group, nv) for keys [0, max_count) of the chunk.
      KeyVector<T> kv[kQkTileK];
      int nk = 0;
      auto flush = [&]() {
        const bool masked = bs % kW != 0;
        for (int64_t v0 = r_first * group; v0 < nv; v0 += kQkTileQ) {
          const int nq = static_cast<int>(std::min<int64_t>(kQkTileQ, nv - v0));
          const float* q[kQkTileQ];
          float* s[kQkTileQ];
          for (int t = 0; t < nq; ++t) {
            q[t] = query(v0 + t);
            s[t] = scores + (v0 + t) * ck;
          }
          qk_tile_any<kD, kQkTileQ, kQkTileK>(nq, nk, masked, q, s, kv, bs, d, p.scale);
        }
        nk = 0;
      };
      for (int64_t jj = 0; jj < cb; ++jj)
        for (int64_t lo = 0; lo < bs && jj * bs + lo < max_count; lo += kW) {
          kv[nk++] = {kblock(j0 + jj) + lo, jj * bs + lo, static_cast<int>(std::min<int64_t>(kW, bs - lo))};
          if (nk == kQkTileK) flush();
        }
      if (nk > 0) flush();
      auto vchunk = [&](int64_t j) { return vblock(j0 + j); };
      for (int64_t r = r_first; r < u.rows; ++r) {
        const int64_t count = count_of(r);
        int64_t gh = 0;
        for (; gh + kHeadTile <= group; gh += kHeadTile) {
          float* accs[kHeadTile];
          const float* ws[kHeadTile];
          for (int h = 0; h < kHeadTile; ++h) {
            const int64_t v = r * group + gh + h;
            softmax_update(scores + v * ck, count, d, out.acc + v * d, out.m + v, out.l + v);
            accs[h] = out.acc + v * d;
            ws[h] = scores + v * ck;
          }
          pv_accumulate_heads<kD>(accs, ws, count, bs, d, vchunk);
        }
        for (; gh < group; ++gh) {
          const int64_t v = r * group + gh;
          softmax_update(scores + v * ck, count, d, out.acc + v * d, out.m + v, out.l + v);
          pv_accumulate<kD>(out.acc + v * d, scores + v * ck, count, bs, d, vchunk);
        }
      }
    }
  };
  if (widen) {
    run([&](int64_t j) -> const float* { return kbuf + j * bs * d; },
        [&](int64_t j) -> const float* { return vbuf + j * bs * d; });
  } else {
    run([&](int64_t j) -> const C* { return p.k_cache.ptr<C>() + cache_offset(j); },
        [&](int64_t j) -> const C* { return p.v_cache.ptr<C>() + cache_offset(j); });
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

void copy_partial(Partial dst, Partial src, int64_t nv, int64_t d) {
  vconvert(src.acc, dst.acc, nv * d);
  vconvert(src.m, dst.m, nv);
  vconvert(src.l, dst.l, nv);
}

void write_output(const PagedAttentionParams& p, const AttentionPlan& plan, const Unit& u,
                  Partial run) {
  const int64_t d = plan.head_dim;
  for (int64_t r = 0; r < u.rows; ++r) {
    float* orow = p.out.ptr<float>() + (u.token0 + r) * p.out.stride[0];
    for (int64_t gh = 0; gh < plan.group; ++gh) {
      int64_t v = r * plan.group + gh;
      float* o = orow + (u.g * plan.group + gh) * p.out.stride[1];
      vconvert(run.acc + v * d, o, d);
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

template <typename C, int kD>
void paged_attention_run(const PagedAttentionParams& p, const AttentionPlan& plan,
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
      attend_split<C, kD>(p, plan, u, 0, run, work);
      for (int64_t s = 1; s < u.num_splits; ++s) {
        attend_split<C, kD>(p, plan, u, s, part, work);
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
    attend_split<C, kD>(p, plan, u, s, partial_of(unit, s), work);
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

// Head dims with a specialized (compile-time D) kernel; others take the generic one.
template <typename C>
void paged_attention_impl(const PagedAttentionParams& p, const AttentionPlan& plan,
                          const KernelContext& ctx) {
  switch (plan.head_dim) {
    case 64: paged_attention_run<C, 64>(p, plan, ctx); break;
    case 128: paged_attention_run<C, 128>(p, plan, ctx); break;
    case 256: paged_attention_run<C, 256>(p, plan, ctx); break;
    default: paged_attention_run<C, 0>(p, plan, ctx); break;
  }
}

}  // namespace
}  // namespace cpu
}  // namespace pagedllm
