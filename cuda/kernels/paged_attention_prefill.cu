// Prefill / mixed path of native paged attention (FlashAttention-2 style, CUDA cores).
//
// Block (tile, KV head g, sequence b) owns kBM query vectors of sequence b, vector v being query
// row v / group of head g * group + v % group (the group's heads packed together, so every K/V
// tile is loaded once per KV head). It walks key tiles of kBN keys up to the tile's last visible
// position: K and V tiles are gathered through the block table into shared memory, then
// S = Q K^T (16 x 8 threads, each kBM/16 rows x kBN/8 columns), causal mask (key <= position of
// the row), online softmax per row (row max/sum over the 8 threads of a row by shuffles), the
// weights go to shared memory and O += P V (each thread the same rows x D/8 columns).
// Tile sizes shrink with D * sizeof(T) so the static shared memory stays under 48 KiB.
#include "kernels/paged_attention_common.cuh"

namespace pagedllm {
namespace attn {
namespace {

constexpr int kTY = 16, kTX = 8;  // thread grid of a block (kTY * kTX == kThreads)
static_assert(kTY * kTX == kThreads, "prefill thread grid");

template <typename T, int D>
struct PrefillTile {
  static constexpr int kBytes = D * static_cast<int>(sizeof(T));
  static constexpr int kBM = kBytes <= 256 ? 64 : (kBytes <= 512 ? 32 : 16);  // query vectors
  static constexpr int kBN = kBytes <= 256 ? 32 : (kBytes <= 512 ? 16 : 8);   // keys
  static constexpr int kPad = 16 / static_cast<int>(sizeof(T));  // row padding against bank conflicts
  static constexpr int kLd = D + kPad;                           // shared row stride (elements)
  static constexpr int kVec = 16 / static_cast<int>(sizeof(T));  // elements per 16-byte load
  static constexpr int kRM = kBM / kTY, kRN = kBN / kTX, kDC = D / kTX;
};

// Copies `rows` rows of D elements (16-byte chunks) into dst [rows][kLd]; row r comes from
// src_of(r) or is zero when src_of returns nullptr.
template <typename T, int D, int kRows, typename F>
__device__ __forceinline__ void load_rows(T* dst, F src_of) {
  using Tile = PrefillTile<T, D>;
  constexpr int kChunks = D / Tile::kVec;
  for (int c = threadIdx.x; c < kRows * kChunks; c += kThreads) {
    const int r = c / kChunks, off = (c % kChunks) * Tile::kVec;
    const T* src = src_of(r);
    uint4 v = make_uint4(0, 0, 0, 0);
    if (src != nullptr) v = *reinterpret_cast<const uint4*>(src + off);
    *reinterpret_cast<uint4*>(dst + r * Tile::kLd + off) = v;
  }
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) paged_attention_prefill_kernel(AttnArgs a) {
  using Tile = PrefillTile<T, D>;
  constexpr int kBM = Tile::kBM, kBN = Tile::kBN, kLd = Tile::kLd, kVec = Tile::kVec;
  constexpr int kRM = Tile::kRM, kRN = Tile::kRN, kDC = Tile::kDC;
  __shared__ __align__(16) T q_s[kBM * kLd];
  __shared__ __align__(16) T k_s[kBN * kLd];
  __shared__ __align__(16) T v_s[kBN * kLd];
  __shared__ float p_s[kBM][kBN + 1];

  const int tile = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
  const int group = a.group;
  const int q_begin = a.query_start_loc[b];
  const int q_len = a.query_start_loc[b + 1] - q_begin;
  const int num_vec = q_len * group;
  const int v0 = tile * kBM;
  if (v0 >= num_vec) return;
  const int seq_len = a.seq_lens[b];
  const int pos0 = seq_len - q_len;  // position of the sequence's first query row
  const int last_vec = min(v0 + kBM, num_vec) - 1;
  const int num_keys = min(seq_len, pos0 + last_vec / group + 1);

  const T* q = static_cast<const T*>(a.q);
  load_rows<T, D, kBM>(q_s, [&](int r) -> const T* {
    const int v = v0 + r;
    if (v >= num_vec) return nullptr;
    return q + static_cast<int64_t>(q_begin + v / group) * a.q_stride_tok +
           static_cast<int64_t>(kvh * group + v % group) * a.q_stride_head;
  });

  const int ty = threadIdx.x / kTX, tx = threadIdx.x % kTX;
  int row_pos[kRM];
  float m[kRM], l[kRM], acc[kRM][kDC];
#pragma unroll
  for (int i = 0; i < kRM; ++i) {
    const int v = v0 + ty * kRM + i;
    row_pos[i] = v < num_vec ? pos0 + v / group : -1;
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int j = 0; j < kDC; ++j) acc[i][j] = 0.0f;
  }

  const T* k_cache = static_cast<const T*>(a.k_cache);
  const T* v_cache = static_cast<const T*>(a.v_cache);
  const int32_t* table = a.block_tables + static_cast<int64_t>(b) * a.block_table_stride;
  for (int k0 = 0; k0 < num_keys; k0 += kBN) {
    __syncthreads();  // the previous tile's K/V/P are no longer read
    load_rows<T, D, kBN>(k_s, [&](int r) -> const T* {
      return k0 + r < num_keys ? k_cache + cache_offset(a, table, k0 + r, kvh, D) : nullptr;
    });
    load_rows<T, D, kBN>(v_s, [&](int r) -> const T* {
      return k0 + r < num_keys ? v_cache + cache_offset(a, table, k0 + r, kvh, D) : nullptr;
    });
    __syncthreads();

    float s[kRM][kRN];
#pragma unroll
    for (int i = 0; i < kRM; ++i)
#pragma unroll
      for (int j = 0; j < kRN; ++j) s[i][j] = 0.0f;
    for (int d = 0; d < D; d += kVec) {
      float qf[kRM][kVec], kf[kRN][kVec];
#pragma unroll
      for (int i = 0; i < kRM; ++i) load_vec<T, kVec>(q_s + (ty * kRM + i) * kLd + d, qf[i]);
#pragma unroll
      for (int j = 0; j < kRN; ++j) load_vec<T, kVec>(k_s + (tx + kTX * j) * kLd + d, kf[j]);
#pragma unroll
      for (int i = 0; i < kRM; ++i)
#pragma unroll
        for (int j = 0; j < kRN; ++j)
#pragma unroll
          for (int e = 0; e < kVec; ++e) s[i][j] += qf[i][e] * kf[j][e];
    }

#pragma unroll
    for (int i = 0; i < kRM; ++i) {
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < kRN; ++j) {
        const int key = k0 + tx + kTX * j;
        s[i][j] = (key <= row_pos[i] && key < num_keys) ? s[i][j] * a.scale : -INFINITY;
        mx = fmaxf(mx, s[i][j]);
      }
#pragma unroll
      for (int mask = kTX / 2; mask >= 1; mask /= 2) mx = fmaxf(mx, gpu_shfl_xor(mx, mask));
      const float m_new = fmaxf(m[i], mx);
      const float alpha = m_new == -INFINITY ? 1.0f : __expf(m[i] - m_new);
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < kRN; ++j) {
        const float w = m_new == -INFINITY ? 0.0f : __expf(s[i][j] - m_new);
        p_s[ty * kRM + i][tx + kTX * j] = w;
        sum += w;
      }
#pragma unroll
      for (int mask = kTX / 2; mask >= 1; mask /= 2) sum += gpu_shfl_xor(sum, mask);
      l[i] = l[i] * alpha + sum;
      m[i] = m_new;
#pragma unroll
      for (int j = 0; j < kDC; ++j) acc[i][j] *= alpha;
    }
    __syncthreads();

    const int keys_here = min(kBN, num_keys - k0);
    for (int c = 0; c < keys_here; ++c) {
      float w[kRM];
#pragma unroll
      for (int i = 0; i < kRM; ++i) w[i] = p_s[ty * kRM + i][c];
      const T* vrow = v_s + c * kLd;
#pragma unroll
      for (int j = 0; j < kDC; ++j) {
        const float vv = to_float(vrow[tx + kTX * j]);
#pragma unroll
        for (int i = 0; i < kRM; ++i) acc[i][j] += w[i] * vv;
      }
    }
  }

  T* out = static_cast<T*>(a.out);
#pragma unroll
  for (int i = 0; i < kRM; ++i) {
    const int v = v0 + ty * kRM + i;
    if (v >= num_vec) continue;
    T* orow = out + static_cast<int64_t>(q_begin + v / group) * a.out_stride_tok +
              static_cast<int64_t>(kvh * group + v % group) * a.out_stride_head;
    const float inv_l = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
#pragma unroll
    for (int j = 0; j < kDC; ++j) orow[tx + kTX * j] = from_float<T>(acc[i][j] * inv_l);
  }
}

template <typename T, int D>
void launch_prefill_d(const AttnArgs& a, gpuStream_t stream) {
  constexpr int kBM = PrefillTile<T, D>::kBM;
  const int64_t tiles = (static_cast<int64_t>(a.max_query_len) * a.group + kBM - 1) / kBM;
  const dim3 grid(static_cast<unsigned>(tiles), a.num_kv_heads, a.num_seqs);
  paged_attention_prefill_kernel<T, D><<<grid, kThreads, 0, stream>>>(a);
  PAGEDLLM_GPU_CHECK(gpuGetLastError());
}

}  // namespace

void run_prefill_path(const AttnArgs& a, DType dtype, int head_dim, gpuStream_t stream) {
  PAGEDLLM_DISPATCH_FLOAT(dtype, T, {
    switch (head_dim) {
      case 16: launch_prefill_d<T, 16>(a, stream); break;
      case 32: launch_prefill_d<T, 32>(a, stream); break;
      case 64: launch_prefill_d<T, 64>(a, stream); break;
      case 128: launch_prefill_d<T, 128>(a, stream); break;
      case 256: launch_prefill_d<T, 256>(a, stream); break;
      default: PAGEDLLM_CHECK(false, "native paged attention has no kernel for head_dim " << head_dim);
    }
  });
}

}  // namespace attn
}  // namespace pagedllm
