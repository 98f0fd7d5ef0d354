// Sampling: one block of kSampleThreads threads per row. The row's logits are copied to work,
// masked and penalized in the host Sampler's order; greedy rows take the argmax, others turn
// work into unnormalized probabilities exp((x - max) / T) (the top token's is exactly 1) and
// narrow them by top-k, top-p and min-p, then draw with the counter-based uniform of
// (seed, step). Every "walk over the sorted tokens" of the host is a select_crossing
// (sampling_block.cuh): a digit-by-digit search over float bits with block sums, no sort.
//
// Exactness: float ops are the host's, rounded the same way (no contraction: explicit _rn
// intrinsics; exp in double, then rounded to float). Sums are in double like the host's, in a
// different order, so a draw differs from the host's only when its target lies within a
// rounding error of a cumulative boundary.
// Cost: about 11 passes over the row per top-k, top-p or draw search (kDigitBits bits of the
// answer per pass); a compacted candidate list would cut more.
#include "kernels/sampling.cuh"

#include "kernels/sampling_block.cuh"

namespace pagedllm {
namespace {

using sampling::block_all_reduce;
using sampling::kSampleThreads;
using sampling::kSampleWarps;

constexpr float kGreedyTemperature = 1e-5f;  // as the host Sampler
constexpr uint32_t kOneBits = 0x3f800000u;   // bits of 1.0f, the largest probability

struct SampleArgs {
  const float* logits;             // [R, V], row stride logits_stride
  int64_t logits_stride;
  const SampleRowParams* rows;     // [R]
  const int32_t* lists;            // [N]
  float* work;                     // [R, V]
  int32_t* token_ids;              // [R]
  float* logprobs;                 // [R] or nullptr
  int32_t* ranks;                  // [R] or nullptr
  int vocab_size;
};

// w = logits with min_tokens masking, repetition penalty, then frequency/presence penalties.
__device__ void process_row(const float* logits, const SampleRowParams& row, const int32_t* lists,
                            float* w, int n) {
  for (int i = threadIdx.x; i < n; i += kSampleThreads) w[i] = logits[i];
  __syncthreads();
  for (int j = threadIdx.x; j < row.num_mask_ids; j += kSampleThreads) w[lists[row.mask_begin + j]] = -INFINITY;
  __syncthreads();
  const float penalty = row.repetition_penalty;
  for (int j = threadIdx.x; j < row.num_repetition_ids; j += kSampleThreads) {
    const int id = lists[row.repetition_begin + j];
    const float x = w[id];
    w[id] = x > 0.0f ? __fdiv_rn(x, penalty) : __fmul_rn(x, penalty);
  }
  __syncthreads();
  const int32_t* counts = lists + row.output_begin + row.num_output_ids;
  for (int j = threadIdx.x; j < row.num_output_ids; j += kSampleThreads) {
    const int id = lists[row.output_begin + j];
    const float x = __fsub_rn(w[id], __fmul_rn(row.frequency_penalty, static_cast<float>(counts[j])));
    w[id] = __fsub_rn(x, row.presence_penalty);
  }
  __syncthreads();
}

// The k-th largest of the values above -inf in w [n], or -inf when fewer than k exist.
__device__ float kth_largest(const float* w, int n, int k, double* scratch) {
  int finite = 0;
  for (int i = threadIdx.x; i < n; i += kSampleThreads) finite += w[i] > -INFINITY;
  finite = block_all_reduce(finite, sampling::SumOp(), scratch);
  if (finite < k) return -INFINITY;
  // The largest key with at least k values at or above it (values at -inf or NaN count 0).
  const uint32_t key = sampling::search_largest_key<int>(
      n, 0xffffffffu, [w](int i) { return w[i] > -INFINITY ? sampling::order_key(w[i]) : 0u; },
      [w](int i) { return w[i] > -INFINITY ? 1 : 0; }, [k](int count) { return count >= k; }, scratch);
  return sampling::key_value(key);
}

// Sum of w [n] after zeroing the entries `drop` rejects (drop(index, value) for value > 0).
template <typename Drop>
__device__ double keep_and_sum(float* w, int n, Drop drop, double* scratch) {
  double s = 0.0;
  for (int i = threadIdx.x; i < n; i += kSampleThreads) {
    const float v = w[i];
    if (v <= 0.0f) continue;
    if (drop(i, v)) {
      w[i] = 0.0f;
    } else {
      s += static_cast<double>(v);
    }
  }
  return block_all_reduce(s, sampling::SumOp(), scratch);
}

// The host Sampler's draw(): the token for processed logits w [n] (overwritten with
// probabilities), or -1 when no token is a candidate.
__device__ int draw(const SampleRowParams& row, float* w, int n, double* scratch, unsigned char* flags) {
  float kth = -INFINITY;
  if (row.top_k > 0 && row.top_k < n) kth = kth_largest(w, n, row.top_k, scratch);
  float max_logit = -INFINITY;
  for (int i = threadIdx.x; i < n; i += kSampleThreads) {
    const float x = w[i];
    if (x > -INFINITY && x >= kth && x > max_logit) max_logit = x;
  }
  max_logit = block_all_reduce(max_logit, sampling::MaxOp(), scratch);
  if (!(max_logit > -INFINITY)) return -1;

  const float inv_temperature = __fdiv_rn(1.0f, row.temperature);
  double total = 0.0;
  for (int i = threadIdx.x; i < n; i += kSampleThreads) {
    const float x = w[i];
    float p = 0.0f;
    if (x > -INFINITY && x >= kth) {
      if (max_logit == INFINITY) {
        p = x == INFINITY ? 1.0f : 0.0f;
      } else {
        p = static_cast<float>(exp(static_cast<double>(__fmul_rn(__fsub_rn(x, max_logit), inv_temperature))));
      }
    }
    w[i] = p;
    total += static_cast<double>(p);
  }
  total = block_all_reduce(total, sampling::SumOp(), scratch);

  uint32_t bits = 0;
  if (row.top_p < 1.0f) {
    const int last = sampling::select_crossing(w, n, static_cast<double>(row.top_p) * total, true, total, kOneBits,
                                               scratch, flags, &bits);
    total = keep_and_sum(
        w, n,
        [bits, last](int i, float v) {
          const uint32_t b = __float_as_uint(v);
          return b < bits || (b == bits && i > last);
        },
        scratch);
  }
  if (row.min_p > 0.0f) {
    const float threshold = row.min_p;
    total = keep_and_sum(w, n, [threshold](int, float v) { return !(v >= threshold); }, scratch);
  }
  const double u = sampling::uniform(row.seed, static_cast<uint64_t>(row.step));
  return sampling::select_crossing(w, n, u * total, false, total, kOneBits, scratch, flags, &bits);
}

// The host Sampler::compute_logprobs for the sampled token (logprob and rank, no top list).
__device__ void token_logprob(const float* logits, int n, int token, double* scratch, float* logprob, int* rank) {
  const float own_raw = logits[token];
  const float own = own_raw != own_raw ? -INFINITY : own_raw;
  float max_logit = -INFINITY;
  int num_larger = 0;
  int num_inf = 0;
  for (int i = threadIdx.x; i < n; i += kSampleThreads) {
    const float x = logits[i];
    max_logit = x > max_logit ? x : max_logit;
    num_larger += x > own;
    num_inf += x == INFINITY;
  }
  max_logit = block_all_reduce(max_logit, sampling::MaxOp(), scratch);
  num_larger = block_all_reduce(num_larger, sampling::SumOp(), scratch);
  num_inf = block_all_reduce(num_inf, sampling::SumOp(), scratch);
  *rank = 1 + num_larger;
  if (max_logit == INFINITY) {
    *logprob = own_raw == INFINITY ? static_cast<float>(-log(static_cast<double>(num_inf))) : -INFINITY;
  } else if (max_logit == -INFINITY) {
    *logprob = own_raw != own_raw ? own_raw : -INFINITY;
  } else {
    double sum = 0.0;
    for (int i = threadIdx.x; i < n; i += kSampleThreads) {
      const float x = logits[i];
      if (x == x) sum += exp(static_cast<double>(x) - static_cast<double>(max_logit));
    }
    sum = block_all_reduce(sum, sampling::SumOp(), scratch);
    const double log_z = static_cast<double>(max_logit) + log(sum);
    *logprob = static_cast<float>(static_cast<double>(own_raw) - log_z);
  }
}

__global__ void __launch_bounds__(kSampleThreads) sample_kernel(SampleArgs a) {
  __shared__ double scratch[sampling::kScratchDoubles];
  __shared__ unsigned char flags[kSampleThreads];
  const int r = blockIdx.x;
  const int n = a.vocab_size;
  const SampleRowParams row = a.rows[r];
  const float* logits = a.logits + static_cast<int64_t>(r) * a.logits_stride;
  float* w = a.work + static_cast<int64_t>(r) * n;

  process_row(logits, row, a.lists, w, n);
  int token = row.temperature < kGreedyTemperature ? sampling::block_argmax(w, n, scratch)
                                                    : draw(row, w, n, scratch, flags);
  if (token < 0) token = sampling::block_argmax(logits, n, scratch);
  if (token < 0) token = 0;
  if (threadIdx.x == 0) a.token_ids[r] = token;
  if (a.logprobs == nullptr && a.ranks == nullptr) return;
  float logprob = 0.0f;
  int rank = 0;
  token_logprob(logits, n, token, scratch, &logprob, &rank);
  if (threadIdx.x == 0) {
    if (a.logprobs != nullptr) a.logprobs[r] = logprob;
    if (a.ranks != nullptr) a.ranks[r] = rank;
  }
}

}  // namespace

void launch_sample(const SampleParams& p, gpuStream_t stream) {
  PAGEDLLM_CHECK(p.logits.ndim == 2 && p.logits.dtype == DType::kFloat32 && p.logits.stride[1] == 1,
                 "sample: logits must be [R, V] float32 with unit column stride");
  const int64_t R = p.logits.shape[0], V = p.logits.shape[1];
  PAGEDLLM_CHECK(V > 0 && V < (int64_t{1} << 31), "sample: vocab size " << V);
  PAGEDLLM_CHECK(p.rows.ndim == 2 && p.rows.dtype == DType::kInt32 && p.rows.shape[0] == R &&
                     p.rows.shape[1] == kSampleRowInts && p.rows.is_contiguous(),
                 "sample: rows must be [R, kSampleRowInts] int32, contiguous");
  PAGEDLLM_CHECK(reinterpret_cast<uintptr_t>(p.rows.data) % alignof(SampleRowParams) == 0,
                 "sample: rows are not aligned for SampleRowParams");
  PAGEDLLM_CHECK(p.token_lists.data == nullptr || p.token_lists.dtype == DType::kInt32, "sample: token_lists dtype");
  PAGEDLLM_CHECK(p.work.ndim == 2 && p.work.dtype == DType::kFloat32 && p.work.shape[0] == R &&
                     p.work.shape[1] == V && p.work.is_contiguous(),
                 "sample: work must be [R, V] float32, contiguous");
  PAGEDLLM_CHECK(p.token_ids.ndim == 1 && p.token_ids.dtype == DType::kInt32 && p.token_ids.shape[0] == R,
                 "sample: token_ids must be [R] int32");
  PAGEDLLM_CHECK(p.logprobs.data == nullptr ||
                     (p.logprobs.dtype == DType::kFloat32 && p.logprobs.ndim == 1 && p.logprobs.shape[0] == R),
                 "sample: logprobs must be [R] float32");
  PAGEDLLM_CHECK(p.ranks.data == nullptr || (p.ranks.dtype == DType::kInt32 && p.ranks.ndim == 1 && p.ranks.shape[0] == R),
                 "sample: ranks must be [R] int32");
  if (R == 0) return;
  SampleArgs a;
  a.logits = p.logits.ptr<const float>();
  a.logits_stride = p.logits.stride[0];
  a.rows = static_cast<const SampleRowParams*>(p.rows.data);
  a.lists = p.token_lists.ptr<const int32_t>();
  a.work = p.work.ptr<float>();
  a.token_ids = p.token_ids.ptr<int32_t>();
  a.logprobs = p.logprobs.ptr<float>();
  a.ranks = p.ranks.ptr<int32_t>();
  a.vocab_size = static_cast<int>(V);
  sample_kernel<<<static_cast<unsigned>(R), kSampleThreads, 0, stream>>>(a);
  PAGEDLLM_GPU_CHECK(gpuGetLastError());
}

}  // namespace pagedllm
