// Block-wide building blocks of the sampling kernel (kernels/sampling.cu): deterministic
// all-reduces, order keys of floats, the host Sampler's counter-based uniform, and the weighted
// "crossing" select that stands in for the host's walk over tokens sorted by probability.
//
// Invariant: every function here is called by all kSampleThreads threads of a block with
// block-uniform arguments and returns the same value to every thread; results depend only on
// the row's data (fixed reduction order, no atomics), so a row gives the same answer whatever
// the batch around it.
#pragma once

#include <cstdint>

#include "gpu_compat.cuh"

namespace pagedllm {
namespace sampling {

constexpr int kSampleThreads = 1024;
constexpr int kSampleWarps = kSampleThreads / PAGEDLLM_WARP_SIZE;
constexpr int kDigitBits = 3;                       // key bits decided per pass of a key search
constexpr int kDigitCandidates = (1 << kDigitBits) - 1;
constexpr int kScratchDoubles = kSampleWarps * kDigitCandidates;  // scratch size of every helper

struct SumOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a > b ? a : b; }
};
struct MinOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a < b ? a : b; }
};

// All-reduce of one value per thread. scratch: [kScratchDoubles] shared (uses kSampleWarps).
// The warps' partial results are combined in warp order by every thread.
template <typename T, typename Op>
__device__ __forceinline__ T block_all_reduce(T v, Op op, double* scratch) {
  for (int offset = PAGEDLLM_WARP_SIZE / 2; offset > 0; offset /= 2) v = op(v, gpu_shfl_xor(v, offset));
  T* slots = reinterpret_cast<T*>(scratch);
  __syncthreads();
  if (threadIdx.x % PAGEDLLM_WARP_SIZE == 0) slots[threadIdx.x / PAGEDLLM_WARP_SIZE] = v;
  __syncthreads();
  T r = slots[0];
  for (int w = 1; w < kSampleWarps; ++w) r = op(r, slots[w]);
  return r;
}

// All-reduce sum of N values per thread. scratch: [N * kSampleWarps] shared.
template <typename T, int N>
__device__ __forceinline__ void block_all_sum(T (&v)[N], double* scratch) {
#pragma unroll
  for (int k = 0; k < N; ++k) {
    for (int offset = PAGEDLLM_WARP_SIZE / 2; offset > 0; offset /= 2) v[k] += gpu_shfl_xor(v[k], offset);
  }
  T* slots = reinterpret_cast<T*>(scratch);
  __syncthreads();
  if (threadIdx.x % PAGEDLLM_WARP_SIZE == 0) {
#pragma unroll
    for (int k = 0; k < N; ++k) slots[k * kSampleWarps + threadIdx.x / PAGEDLLM_WARP_SIZE] = v[k];
  }
  __syncthreads();
#pragma unroll
  for (int k = 0; k < N; ++k) {
    T r = slots[k * kSampleWarps];
    for (int w = 1; w < kSampleWarps; ++w) r += slots[k * kSampleWarps + w];
    v[k] = r;
  }
}

// The largest key K <= max_key for which passes(S(K)) holds, where S(K) is the sum of
// weight_of(i) over i < n with key_of(i) >= K, or 0 when no K > 0 passes. Precondition: passes
// is monotone (true for small K). Decides kDigitBits bits per pass over the row.
template <typename T, typename KeyOf, typename WeightOf, typename Passes>
__device__ uint32_t search_largest_key(int n, uint32_t max_key, KeyOf key_of, WeightOf weight_of, Passes passes,
                                       double* scratch) {
  uint32_t key = 0;
  for (int hi = 32; hi > 0; hi -= kDigitBits) {
    const int shift = hi > kDigitBits ? hi - kDigitBits : 0;
    const uint32_t num_candidates = (1u << (hi - shift)) - 1;  // digits 1 .. num_candidates
    if ((key | (1u << shift)) > max_key) continue;
    T acc[kDigitCandidates];
#pragma unroll
    for (int d = 0; d < kDigitCandidates; ++d) acc[d] = T(0);
    for (int i = threadIdx.x; i < n; i += kSampleThreads) {
      const uint32_t k = key_of(i);
      if (k <= key) continue;
      const T w = weight_of(i);
#pragma unroll
      for (int d = 0; d < kDigitCandidates; ++d) {
        if (static_cast<uint32_t>(d) < num_candidates && k >= (key | (static_cast<uint32_t>(d + 1) << shift))) acc[d] += w;
      }
    }
    block_all_sum(acc, scratch);
    uint32_t next = key;
#pragma unroll
    for (int d = 1; d <= kDigitCandidates; ++d) {  // passes is monotone: the last true d wins
      const uint32_t candidate = key | (static_cast<uint32_t>(d) << shift);
      if (static_cast<uint32_t>(d) <= num_candidates && candidate <= max_key && passes(acc[d - 1])) next = candidate;
    }
    key = next;
  }
  return key;
}

// A key whose unsigned order is the float order of non-NaN values (-0 and +0 share a key).
__device__ __forceinline__ uint32_t order_key(float x) {
  const uint32_t bits = __float_as_uint(x == 0.0f ? 0.0f : x);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}
__device__ __forceinline__ float key_value(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

// The host Sampler's mix64 and Sampler::uniform (sample/sampler.cc), bit for bit.
__device__ __forceinline__ uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}
__device__ __forceinline__ double uniform(uint64_t seed, uint64_t index) {
  uint64_t x = mix64(seed + 0x9E3779B97F4A7C15ull);
  x = mix64(x ^ (index * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull));
  return static_cast<double>(x >> 11) * (1.0 / 9007199254740992.0);
}

// Index of the largest value above -inf of x [n] (NaN never wins, ties -> lowest index), or
// -1 when there is none. (order key, ~index) packs into one 64-bit max.
__device__ __forceinline__ int block_argmax(const float* x, int n, double* scratch) {
  unsigned long long best = 0;
  for (int i = threadIdx.x; i < n; i += kSampleThreads) {
    const float v = x[i];
    if (v > -INFINITY) {
      const unsigned long long packed =
          (static_cast<unsigned long long>(order_key(v)) << 32) | static_cast<uint32_t>(~static_cast<uint32_t>(i));
      best = packed > best ? packed : best;
    }
  }
  best = block_all_reduce(best, MaxOp(), scratch);
  return best == 0 ? -1 : static_cast<int>(~static_cast<uint32_t>(best & 0xffffffffull));
}

// The token a walk over p [n] (weights >= 0, zero weights are not tokens) in descending order
// (higher weight, then lower index) stops at: the first whose cumulative weight passes target
// (> target, or >= when inclusive), or the last token when none does. Returns its index and
// its weight's bits in *bits, or -1 when no weight is positive. total is the sum of p;
// max_bits the largest weight's bits.
// flags: [kSampleThreads] shared scratch.
__device__ int select_crossing(const float* p, int n, double target, bool inclusive, double total,
                               uint32_t max_bits, double* scratch, unsigned char* flags, uint32_t* bits) {
  auto passes = [&](double cumulative) { return inclusive ? cumulative >= target : cumulative > target; };
  uint32_t key = 0;
  int rank = 0;  // position of the answer among the tokens of weight bits == key, by index
  if (!passes(total)) {
    uint32_t low = 0xffffffffu;
    for (int i = threadIdx.x; i < n; i += kSampleThreads) {
      const uint32_t b = __float_as_uint(p[i]);
      if (b != 0 && b < low) low = b;
    }
    key = block_all_reduce(low, MinOp(), scratch);
    rank = -1;  // the last of them
  } else {
    // The largest key <= max_bits whose mass at or above it passes: a token's weight.
    key = search_largest_key<double>(
        n, max_bits, [p](int i) { return __float_as_uint(p[i]); },
        [p](int i) { return static_cast<double>(p[i]); }, passes, scratch);
  }
  double above = 0.0;
  int num_equal = 0;
  for (int i = threadIdx.x; i < n; i += kSampleThreads) {
    const uint32_t b = __float_as_uint(p[i]);
    if (b > key) above += static_cast<double>(p[i]);
    num_equal += b == key;
  }
  above = block_all_reduce(above, SumOp(), scratch);
  num_equal = block_all_reduce(num_equal, SumOp(), scratch);
  if (num_equal == 0) return -1;  // no token has a positive weight
  if (rank == 0 && num_equal > 1) {
    const double weight = static_cast<double>(__uint_as_float(key));
    const double q = ceil((target - above) / weight) - 1.0;
    int64_t j = q <= 0.0 ? 0 : (q >= num_equal - 1 ? num_equal - 1 : static_cast<int64_t>(q));
    while (j > 0 && passes(above + static_cast<double>(j) * weight)) --j;
    while (j + 1 < num_equal && !passes(above + static_cast<double>(j + 1) * weight)) ++j;
    rank = static_cast<int>(j);
  }
  if (rank < 0) rank = num_equal - 1;
  *bits = key;
  // The rank-th index (ascending) with weight bits == key.
  __shared__ int found;
  int seen = 0;
  for (int base = 0; base < n; base += kSampleThreads) {
    const int i = base + static_cast<int>(threadIdx.x);
    const bool match = i < n && __float_as_uint(p[i]) == key;
    const int count = __syncthreads_count(match);
    if (seen + count > rank) {
      flags[threadIdx.x] = match;
      __syncthreads();
      if (threadIdx.x == 0) {
        int k = seen;
        for (int t = 0; t < kSampleThreads; ++t) {
          if (flags[t] && k++ == rank) {
            found = base + t;
            break;
          }
        }
      }
      __syncthreads();
      return found;
    }
    seen += count;
  }
  return -1;
}

}  // namespace sampling
}  // namespace pagedllm
