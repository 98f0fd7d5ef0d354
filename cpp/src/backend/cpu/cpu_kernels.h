// Internal interface between CpuBackend and its kernels. Each op family has one entry point
// per ISA tier it is built for (suffix _avx2, _avx512, _avx512bf16), defined in a translation
// unit compiled with that tier's flags; CpuBackend calls one only when active_isa() allows it.
// Preconditions (shapes, dtypes, index ranges) are checked by CpuBackend before the call, so
// kernels trust their params. Work plans and scratch sizes are computed here (plain x86-64
// code), shared by the backend (which sizes the scratch) and the kernels (which carve it).
#pragma once

#include <cstdint>

#include "backend/ops.h"

namespace pagedllm {

class ThreadPool;

namespace cpu {

// What a kernel call may use besides its params.
struct KernelContext {
  ThreadPool* pool = nullptr;
  float* scratch = nullptr;    // [scratch_floats], 64-byte aligned, contents undefined
  int64_t scratch_floats = 0;  // at least what the op's *_scratch_floats() asked for
};

// ---- linear ----
// M <= linear_direct_max_m() uses the direct (GEMV-like) kernels. Larger M runs
// single-threaded sgemm on a grid of tiles (mt activation rows x nt weight rows), converting a
// bfloat16 weight panel to float32 first. The grid depends on the shape only, never on the
// thread count.
int64_t linear_direct_max_m(DType weight_dtype, int vector_width);
// Activations are never rounded to bfloat16: every M keeps float32 activations, so a row's
// result does not depend on how many rows share the call (batch composition).
struct LinearTiling {
  int64_t mt = 0, nt = 0;            // tile size
  int64_t tiles_m = 0, tiles_n = 0;  // tile index = panel * tiles_m + row block
};
LinearTiling linear_tiling(int64_t m, int64_t n);
int64_t linear_scratch_floats(const LinearParams& p, int num_threads, int vector_width);

void linear_avx2(const LinearParams& p, const KernelContext& ctx);
void linear_avx512(const LinearParams& p, const KernelContext& ctx);

// linear on a packed weight (packed_weight.h): p.weight is [P, K, 32], N = p.out.shape[1].
// Every row's result is bit-identical for any M, thread count and tier (packed_linear_impl.h).
void packed_linear_avx2(const LinearParams& p, const KernelContext& ctx);
void packed_linear_avx512(const LinearParams& p, const KernelContext& ctx);

// ---- paged attention ----
// Work unit: (sequence b, query-row tile, KV head g). A tile holds up to rows_per_tile query
// rows, i.e. rows_per_tile * group query vectors. Keys are visited in splits of
// blocks_per_split cache blocks; each split yields a partial (max, sum, acc) and partials are
// combined in split order, so results do not depend on how work is spread over threads. When
// there are few units (split_parallel), splits run as separate tasks and their partials go to
// scratch; else one task runs all splits of a unit in order.
struct AttentionPlan {
  int64_t num_seqs = 0;
  int64_t num_q_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t group = 0;  // num_q_heads / num_kv_heads
  int64_t head_dim = 0;
  int64_t block_size = 0;
  int64_t rows_per_tile = 0;
  int64_t vectors_per_tile = 0;  // rows_per_tile * group
  int64_t blocks_per_split = 0;
  int64_t chunk_blocks = 0;  // blocks per softmax chunk (~64 keys; K/V of a chunk stay in L1)
  int64_t max_tiles = 0;   // max over b of ceil(q_len_b / rows_per_tile)
  int64_t max_splits = 0;  // max over b of ceil(ceil(seq_len_b / block_size) / blocks_per_split)
  bool split_parallel = false;
  int64_t thread_scratch_floats = 0;  // per-thread working set
  int64_t partial_floats = 0;         // per (unit, split) partial in split_parallel mode
  int64_t scratch_floats = 0;         // total
};
AttentionPlan plan_attention(const PagedAttentionParams& p, int num_threads);

void paged_attention_avx2(const PagedAttentionParams& p, const AttentionPlan& plan,
                          const KernelContext& ctx);
void paged_attention_avx512(const PagedAttentionParams& p, const AttentionPlan& plan,
                            const KernelContext& ctx);

// ---- element-wise and data-movement ops (AVX2; memory-bound, used on every tier) ----
// The fewest rows of row_len elements worth handing to another thread.
int64_t rows_per_task(int64_t row_len);

void embedding_avx2(const EmbeddingParams& p, const KernelContext& ctx);
void gather_rows_avx2(const GatherRowsParams& p, const KernelContext& ctx);
void rms_norm_avx2(const RmsNormParams& p, const KernelContext& ctx);
void head_rms_norm_avx2(const HeadRmsNormParams& p, const KernelContext& ctx);
void rotary_embedding_avx2(const RotaryParams& p, const KernelContext& ctx);
void silu_and_mul_avx2(const SiluAndMulParams& p, const KernelContext& ctx);
void write_kv_cache_avx2(const WriteKvCacheParams& p, const KernelContext& ctx);

}  // namespace cpu
}  // namespace pagedllm
