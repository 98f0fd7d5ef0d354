// Shared pieces of the native paged-attention kernels (paged_attention.cuh): the flattened
// kernel arguments, vector loads that widen to float, and the per-path launch entry points.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/dtype.cuh"

namespace pagedllm {
namespace attn {

constexpr int kThreads = 128;  // threads per block of every attention kernel

// Element pointers and strides of PagedAttentionParams, plus the decode split layout.
// Caches are contiguous [num_blocks, num_kv_heads, block_size, D].
struct AttnArgs {
  const void* q = nullptr;                // [T, Hq, D], strides q_stride_tok / q_stride_head
  void* out = nullptr;                    // [T, Hq, D], strides out_stride_tok / out_stride_head
  const void* k_cache = nullptr;          // [num_blocks, Hkv, block_size, D]
  const void* v_cache = nullptr;          // [num_blocks, Hkv, block_size, D]
  const int32_t* block_tables = nullptr;  // [B, block_table_stride]
  const int32_t* query_start_loc = nullptr;  // [B + 1]
  const int32_t* seq_lens = nullptr;         // [B]
  int64_t q_stride_tok = 0, q_stride_head = 0;
  int64_t out_stride_tok = 0, out_stride_head = 0;
  int64_t block_table_stride = 0;
  int num_seqs = 0, num_q_heads = 0, num_kv_heads = 0, group = 1, block_size = 16;
  float scale = 1.0f;
  int max_query_len = 0;
  // Decode split-K: partition p of sequence b covers keys [p * t, (p + 1) * t) with
  // t = decode_partition_tokens(seq_lens[b], num_partitions); partitions past the end are empty.
  int num_partitions = 1;       // grid partitions (P)
  float* part_out = nullptr;    // [B, Hq, P, D]
  float* part_max = nullptr;    // [B, Hq, P]
  float* part_sum = nullptr;    // [B, Hq, P]
};

constexpr int kDecodeChunk = 128;  // keys the decode kernel scores per pass

// Keys per decode partition of a sequence of seq_len keys split at most num_partitions ways:
// a multiple of kDecodeChunk, at least one chunk.
__host__ __device__ __forceinline__ int decode_partition_tokens(int seq_len, int num_partitions) {
  const int per = (seq_len + num_partitions - 1) / num_partitions;
  const int rounded = (per + kDecodeChunk - 1) / kDecodeChunk * kDecodeChunk;
  return rounded < kDecodeChunk ? kDecodeChunk : rounded;
}

// Element offset of key `t` of KV head `kvh` in a cache, through sequence b's block table.
__device__ __forceinline__ int64_t cache_offset(const AttnArgs& a, const int32_t* table, int t, int kvh, int d) {
  const int64_t block = table[t / a.block_size];
  return ((block * a.num_kv_heads + kvh) * a.block_size + t % a.block_size) * d;
}

// f[0..N) = the N elements at p (N * sizeof(T) a multiple of 8 bytes; p aligned to 16 bytes
// when N * sizeof(T) is a multiple of 16, else to 8).
template <typename T, int N>
__device__ __forceinline__ void load_vec(const T* p, float* f) {
  static_assert((N * sizeof(T)) % 8 == 0, "load_vec wants whole 8-byte words");
  using Word = typename std::conditional<(N * sizeof(T)) % 16 == 0, uint4, uint2>::type;
  constexpr int kWords = N * sizeof(T) / sizeof(Word);
  Word raw[kWords];
  const Word* src = reinterpret_cast<const Word*>(p);
#pragma unroll
  for (int w = 0; w < kWords; ++w) raw[w] = src[w];
  const T* e = reinterpret_cast<const T*>(raw);
#pragma unroll
  for (int i = 0; i < N; ++i) f[i] = to_float(e[i]);
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int mask = PAGEDLLM_WARP_SIZE / 2; mask >= 1; mask /= 2) v = fmaxf(v, gpu_shfl_xor(v, mask));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int mask = PAGEDLLM_WARP_SIZE / 2; mask >= 1; mask /= 2) v += gpu_shfl_xor(v, mask);
  return v;
}

// Decode path (paged_attention_decode.cu): split kernel + merge kernel.
void run_decode_path(const AttnArgs& a, DType dtype, int head_dim, gpuStream_t stream);
// Prefill / mixed path (paged_attention_prefill.cu).
void run_prefill_path(const AttnArgs& a, DType dtype, int head_dim, gpuStream_t stream);

}  // namespace attn
}  // namespace pagedllm
