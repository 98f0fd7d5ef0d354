// Decode path of native paged attention: one query row per sequence.
//
// paged_attention_decode_kernel: block (KV head, sequence b, partition) holds the group's query
// heads in shared memory and walks the partition's keys in chunks of kChunk: (1) lanes split D,
// a few lanes per key, dot products reduced with shuffles -> scores in shared memory; (2) one warp
// per query head folds the chunk into the running (max m, sum l) and turns scores into weights;
// (3) threads own 4 columns of V for one token lane and accumulate weight * V for every head of
// the group. Each K and V row is therefore read once for the whole group. The token lanes are
// summed in a fixed order (deterministic). A sequence that fits one partition writes `out`
// directly; otherwise the normalized partial, m and l go to the workspace and
// paged_attention_merge_kernel combines the partitions (weights l_p * exp(m_p - M)).
#include "kernels/paged_attention_common.cuh"

namespace pagedllm {
namespace attn {
namespace {

constexpr int kChunk = kDecodeChunk;
constexpr int kWarps = kThreads / PAGEDLLM_WARP_SIZE;

template <typename T, int D, int GMAX>
__global__ void __launch_bounds__(kThreads) paged_attention_decode_kernel(AttnArgs a) {
  constexpr int kSE = 8;              // elements of a key per lane in the scores pass
  constexpr int kTG = D / kSE;        // lanes per key
  constexpr int kKeysPerPass = kThreads / kTG;
  constexpr int kPE = 4;              // columns of V per thread
  constexpr int kCT = D / kPE;        // threads per V row
  constexpr int kTL = kThreads / kCT; // token lanes
  static_assert(kTG <= PAGEDLLM_WARP_SIZE && kChunk % kKeysPerPass == 0, "bad decode tiling");
  static_assert(kThreads % kCT == 0, "bad decode tiling");

  __shared__ __align__(16) float q_s[GMAX][D];  // scaled queries; afterwards the output sum
  __shared__ float p_s[GMAX][kChunk];           // scores, then weights of the chunk
  __shared__ float m_s[GMAX], l_s[GMAX], alpha_s[GMAX];

  const int kvh = blockIdx.x, b = blockIdx.y, part = blockIdx.z;
  const int q_begin = a.query_start_loc[b];
  if (a.query_start_loc[b + 1] - q_begin <= 0) return;
  const int seq_len = a.seq_lens[b];
  const int part_tokens = decode_partition_tokens(seq_len, a.num_partitions);
  const int part_begin = part * part_tokens;
  if (part_begin >= seq_len) return;
  const int part_end = min(seq_len, part_begin + part_tokens);
  const int group = a.group;
  const int tid = threadIdx.x;

  const T* q = static_cast<const T*>(a.q) + static_cast<int64_t>(q_begin) * a.q_stride_tok;
  for (int i = tid; i < GMAX * D; i += kThreads) {
    const int g = i / D, d = i % D;
    q_s[g][d] = g < group ? to_float(q[static_cast<int64_t>(kvh * group + g) * a.q_stride_head + d]) * a.scale : 0.0f;
  }
  if (tid < GMAX) {
    m_s[tid] = -INFINITY;
    l_s[tid] = 0.0f;
  }
  __syncthreads();

  const T* k_cache = static_cast<const T*>(a.k_cache);
  const T* v_cache = static_cast<const T*>(a.v_cache);
  const int32_t* table = a.block_tables + static_cast<int64_t>(b) * a.block_table_stride;
  const int warp = tid / PAGEDLLM_WARP_SIZE, lane = tid % PAGEDLLM_WARP_SIZE;
  const int key_slot = tid / kTG, kl = tid % kTG;
  const int tl = tid / kCT, ct = tid % kCT;
  float acc[GMAX][kPE];
#pragma unroll
  for (int g = 0; g < GMAX; ++g)
#pragma unroll
    for (int e = 0; e < kPE; ++e) acc[g][e] = 0.0f;

  for (int chunk = part_begin; chunk < part_end; chunk += kChunk) {
    const int chunk_len = min(kChunk, part_end - chunk);
    for (int i = key_slot; i < kChunk; i += kKeysPerPass) {
      float s[GMAX];
#pragma unroll
      for (int g = 0; g < GMAX; ++g) s[g] = 0.0f;
      if (i < chunk_len) {
        float k[kSE];
        load_vec<T, kSE>(k_cache + cache_offset(a, table, chunk + i, kvh, D) + kl * kSE, k);
#pragma unroll
        for (int g = 0; g < GMAX; ++g) {
          const float4* qv = reinterpret_cast<const float4*>(&q_s[g][kl * kSE]);
          const float4 q0 = qv[0], q1 = qv[1];
          s[g] = q0.x * k[0] + q0.y * k[1] + q0.z * k[2] + q0.w * k[3] + q1.x * k[4] + q1.y * k[5] +
                 q1.z * k[6] + q1.w * k[7];
        }
      }
#pragma unroll
      for (int g = 0; g < GMAX; ++g)
#pragma unroll
        for (int mask = kTG / 2; mask >= 1; mask /= 2) s[g] += gpu_shfl_xor(s[g], mask);
      if (kl == 0) {
#pragma unroll
        for (int g = 0; g < GMAX; ++g) p_s[g][i] = i < chunk_len ? s[g] : -INFINITY;
      }
    }
    __syncthreads();

    for (int g = warp; g < group; g += kWarps) {
      float mx = -INFINITY;
      for (int i = lane; i < chunk_len; i += PAGEDLLM_WARP_SIZE) mx = fmaxf(mx, p_s[g][i]);
      mx = warp_max(mx);
      const float m_old = m_s[g];
      const float m_new = fmaxf(m_old, mx);
      float sum = 0.0f;
      for (int i = lane; i < chunk_len; i += PAGEDLLM_WARP_SIZE) {
        const float w = __expf(p_s[g][i] - m_new);
        p_s[g][i] = w;
        sum += w;
      }
      sum = warp_sum(sum);
      if (lane == 0) {
        const float alpha = __expf(m_old - m_new);
        alpha_s[g] = alpha;
        l_s[g] = l_s[g] * alpha + sum;
        m_s[g] = m_new;
      }
    }
    __syncthreads();

#pragma unroll
    for (int g = 0; g < GMAX; ++g) {
      const float alpha = g < group ? alpha_s[g] : 0.0f;
#pragma unroll
      for (int e = 0; e < kPE; ++e) acc[g][e] *= alpha;
    }
    for (int i = tl; i < chunk_len; i += kTL) {
      float v[kPE];
      load_vec<T, kPE>(v_cache + cache_offset(a, table, chunk + i, kvh, D) + ct * kPE, v);
#pragma unroll
      for (int g = 0; g < GMAX; ++g) {
        if (g < group) {
          const float w = p_s[g][i];
#pragma unroll
          for (int e = 0; e < kPE; ++e) acc[g][e] += w * v[e];
        }
      }
    }
    __syncthreads();
  }

  // Sum the token lanes: first inside a warp (lanes kCT apart), then the warps' leaders in order.
  constexpr int kLanesPerRow = kCT < PAGEDLLM_WARP_SIZE ? PAGEDLLM_WARP_SIZE / kCT : 1;
#pragma unroll
  for (int g = 0; g < GMAX; ++g)
#pragma unroll
    for (int e = 0; e < kPE; ++e)
#pragma unroll
      for (int mask = kCT; mask < PAGEDLLM_WARP_SIZE; mask *= 2) acc[g][e] += gpu_shfl_xor(acc[g][e], mask);
  const bool leader = tl % kLanesPerRow == 0;
  const int leader_rank = tl / kLanesPerRow;
  for (int r = 0; r < kTL / kLanesPerRow; ++r) {
    if (leader && leader_rank == r) {
#pragma unroll
      for (int g = 0; g < GMAX; ++g)
#pragma unroll
        for (int e = 0; e < kPE; ++e) q_s[g][ct * kPE + e] = (r == 0 ? 0.0f : q_s[g][ct * kPE + e]) + acc[g][e];
    }
    __syncthreads();
  }

  const int num_parts = (seq_len + part_tokens - 1) / part_tokens;
  for (int i = tid; i < group * D; i += kThreads) {
    const int g = i / D, d = i % D, h = kvh * group + g;
    const float o = q_s[g][d] / l_s[g];
    if (num_parts == 1) {
      T* out = static_cast<T*>(a.out) + static_cast<int64_t>(q_begin) * a.out_stride_tok + static_cast<int64_t>(h) * a.out_stride_head;
      out[d] = from_float<T>(o);
    } else {
      const int64_t row = (static_cast<int64_t>(b) * a.num_q_heads + h) * a.num_partitions + part;
      a.part_out[row * D + d] = o;
    }
  }
  if (num_parts > 1 && tid < group) {
    const int64_t row = (static_cast<int64_t>(b) * a.num_q_heads + kvh * group + tid) * a.num_partitions + part;
    a.part_max[row] = m_s[tid];
    a.part_sum[row] = l_s[tid];
  }
}

// Block (query head h, sequence b): out = sum_p w_p o_p / sum_p w_p with w_p = l_p exp(m_p - M).
template <typename T>
__global__ void __launch_bounds__(kThreads) paged_attention_merge_kernel(AttnArgs a, int head_dim) {
  const int h = blockIdx.x, b = blockIdx.y;
  const int q_begin = a.query_start_loc[b];
  if (a.query_start_loc[b + 1] - q_begin <= 0) return;
  const int seq_len = a.seq_lens[b];
  const int part_tokens = decode_partition_tokens(seq_len, a.num_partitions);
  const int num_parts = (seq_len + part_tokens - 1) / part_tokens;
  if (num_parts <= 1) return;
  const int64_t base = (static_cast<int64_t>(b) * a.num_q_heads + h) * a.num_partitions;
  float m = -INFINITY;
  for (int p = 0; p < num_parts; ++p) m = fmaxf(m, a.part_max[base + p]);
  float l = 0.0f;
  for (int p = 0; p < num_parts; ++p) l += a.part_sum[base + p] * __expf(a.part_max[base + p] - m);
  const float inv_l = 1.0f / l;
  T* out = static_cast<T*>(a.out) + static_cast<int64_t>(q_begin) * a.out_stride_tok + static_cast<int64_t>(h) * a.out_stride_head;
  for (int d = threadIdx.x; d < head_dim; d += kThreads) {
    float o = 0.0f;
    for (int p = 0; p < num_parts; ++p)
      o += a.part_sum[base + p] * __expf(a.part_max[base + p] - m) * a.part_out[(base + p) * head_dim + d];
    out[d] = from_float<T>(o * inv_l);
  }
}

template <typename T, int D>
void launch_decode_d(const AttnArgs& a, gpuStream_t stream) {
  const dim3 grid(a.num_kv_heads, a.num_seqs, a.num_partitions);
  if (a.group <= 1) {
    paged_attention_decode_kernel<T, D, 1><<<grid, kThreads, 0, stream>>>(a);
  } else if (a.group <= 2) {
    paged_attention_decode_kernel<T, D, 2><<<grid, kThreads, 0, stream>>>(a);
  } else if (a.group <= 4) {
    paged_attention_decode_kernel<T, D, 4><<<grid, kThreads, 0, stream>>>(a);
  } else if (a.group <= 8) {
    paged_attention_decode_kernel<T, D, 8><<<grid, kThreads, 0, stream>>>(a);
  } else {
    paged_attention_decode_kernel<T, D, 16><<<grid, kThreads, 0, stream>>>(a);
  }
  PAGEDLLM_GPU_CHECK(gpuGetLastError());
  if (a.num_partitions > 1) {
    paged_attention_merge_kernel<T><<<dim3(a.num_q_heads, a.num_seqs), kThreads, 0, stream>>>(a, D);
    PAGEDLLM_GPU_CHECK(gpuGetLastError());
  }
}

}  // namespace

void run_decode_path(const AttnArgs& a, DType dtype, int head_dim, gpuStream_t stream) {
  PAGEDLLM_CHECK(a.group >= 1 && a.group <= 16, "decode kernel serves GQA groups up to 16, got " << a.group);
  PAGEDLLM_DISPATCH_FLOAT(dtype, T, {
    switch (head_dim) {
      case 16: launch_decode_d<T, 16>(a, stream); break;
      case 32: launch_decode_d<T, 32>(a, stream); break;
      case 64: launch_decode_d<T, 64>(a, stream); break;
      case 128: launch_decode_d<T, 128>(a, stream); break;
      case 256: launch_decode_d<T, 256>(a, stream); break;
      default: PAGEDLLM_CHECK(false, "native paged attention has no kernel for head_dim " << head_dim);
    }
  });
}

}  // namespace attn
}  // namespace pagedllm
