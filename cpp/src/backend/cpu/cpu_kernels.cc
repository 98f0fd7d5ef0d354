// Work plans and scratch sizes of the CPU kernels. Plain x86-64 code: the backend and every ISA
// tier call these, so a plan never depends on the tier and all tiers carve scratch alike.
#include "backend/cpu/cpu_kernels.h"

#include <algorithm>

namespace pagedllm {
namespace cpu {

namespace {

constexpr int64_t kLinearPanelRows = 128;   // weight rows per sgemm tile
constexpr int64_t kLinearMinTileRows = 64;  // activation rows per sgemm tile, at least
constexpr int64_t kLinearTargetTiles = 32;  // enough tiles to feed a large machine
constexpr int64_t kAttnTileVectors = 32;  // query vectors (rows x group heads) per unit
constexpr int64_t kAttnSplitKeys = 512;   // keys per split
constexpr int64_t kAttnChunkKeys = 64;    // keys per softmax chunk
constexpr int64_t kAttnPartialCapFloats = int64_t{8} << 20;  // split-parallel storage cap
constexpr int64_t kMinTaskElements = 16384;  // element-wise ops: smallest chunk per thread

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

}  // namespace

int64_t rows_per_task(int64_t row_len) {
  return std::max<int64_t>(1, kMinTaskElements / std::max<int64_t>(row_len, 1));
}

LinearTiling linear_tiling(int64_t m, int64_t n) {
  LinearTiling t;
  t.nt = std::min(kLinearPanelRows, round_up(n, 16));
  t.tiles_n = (n + t.nt - 1) / t.nt;
  int64_t want_m = (kLinearTargetTiles + t.tiles_n - 1) / t.tiles_n;
  t.tiles_m = std::max<int64_t>(1, std::min(want_m, m / kLinearMinTileRows));
  t.mt = round_up((m + t.tiles_m - 1) / t.tiles_m, 16);
  t.tiles_m = (m + t.mt - 1) / t.mt;
  return t;
}

// Measured on one core (K = N = 768..2048): the bfloat16 direct kernel holds ~95 GFLOP/s with
// AVX-512 up to M = 64 (~50 with AVX2), and sgemm on widened panels only overtakes it beyond
// M ~ 48 (AVX-512) / 16 (AVX2); with float32 weights sgemm wins from M ~ 16 / 8.
int64_t linear_direct_max_m(DType weight_dtype, int vector_width) {
  bool wide = vector_width >= 16;
  if (weight_dtype == DType::kBFloat16) return wide ? 48 : 16;
  return wide ? 16 : 8;
}

int64_t linear_scratch_floats(const LinearParams& p, int num_threads, int vector_width) {
  if (p.weight.dtype != DType::kBFloat16) return 0;
  int64_t m = p.x.shape[0];
  int64_t k = p.x.shape[1];
  if (m <= linear_direct_max_m(p.weight.dtype, vector_width)) return 0;
  return num_threads * linear_tiling(m, p.weight.shape[0]).nt * round_up(k, 16);
}

AttentionPlan plan_attention(const PagedAttentionParams& p, int num_threads) {
  AttentionPlan plan;
  plan.num_seqs = p.seq_lens.shape[0];
  plan.num_q_heads = p.q.shape[1];
  plan.num_kv_heads = p.k_cache.shape[1];
  plan.group = plan.num_q_heads / plan.num_kv_heads;
  plan.block_size = p.k_cache.shape[2];
  plan.head_dim = p.k_cache.shape[3];
  plan.rows_per_tile = std::max<int64_t>(1, kAttnTileVectors / plan.group);
  plan.vectors_per_tile = plan.rows_per_tile * plan.group;
  plan.blocks_per_split = std::max<int64_t>(1, kAttnSplitKeys / plan.block_size);
  plan.chunk_blocks = std::min(plan.blocks_per_split, std::max<int64_t>(1, kAttnChunkKeys / plan.block_size));

  const int32_t* qsl = p.query_start_loc.ptr<int32_t>();
  const int32_t* seq_lens = p.seq_lens.ptr<int32_t>();
  int64_t num_units = 0;
  for (int64_t b = 0; b < plan.num_seqs; ++b) {
    int64_t q_len = qsl[b + 1] - qsl[b];
    int64_t tiles = (q_len + plan.rows_per_tile - 1) / plan.rows_per_tile;
    int64_t blocks = (seq_lens[b] + plan.block_size - 1) / plan.block_size;
    int64_t splits = (blocks + plan.blocks_per_split - 1) / plan.blocks_per_split;
    plan.max_tiles = std::max(plan.max_tiles, tiles);
    if (q_len > 0) plan.max_splits = std::max(plan.max_splits, splits);
    num_units += tiles * plan.num_kv_heads;
  }

  int64_t v = plan.vectors_per_tile;
  int64_t d = plan.head_dim;
  plan.partial_floats = round_up(v * (d + 2), 16);
  const int64_t split_keys = plan.blocks_per_split * plan.block_size;
  // partials, the chunk's scores [vectors, chunk keys], widened K and V of a split
  plan.thread_scratch_floats = 2 * plan.partial_floats + round_up(v * plan.chunk_blocks * plan.block_size, 16) +
                               2 * round_up(split_keys * d, 16);
  int64_t split_items = plan.num_seqs * plan.max_tiles * plan.max_splits * plan.num_kv_heads;
  int64_t partial_total = split_items * plan.partial_floats;
  plan.split_parallel = num_threads > 1 && plan.max_splits > 1 &&
                        num_units < 2 * static_cast<int64_t>(num_threads) &&
                        partial_total <= kAttnPartialCapFloats;
  plan.scratch_floats = num_threads * plan.thread_scratch_floats +
                        (plan.split_parallel ? partial_total : 0);
  return plan;
}

}  // namespace cpu
}  // namespace pagedllm
