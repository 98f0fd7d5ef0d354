// CpuBackend: validates op params (CHECK: a bad shape is a caller bug), sizes the scratch and
// dispatches to the kernels of the active ISA tier. See cpu_backend.h for the invariants.
#include "backend/cpu/cpu_backend.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "backend/cpu/blas.h"
#include "backend/cpu/float_convert.h"
#include "backend/cpu/isa.h"
#include "backend/cpu/packed_weight.h"

namespace pagedllm {

namespace {

using cpu::Isa;

bool is_weight_dtype(DType d) { return d == DType::kFloat32 || d == DType::kBFloat16; }

// t has `ndim` dims, dtype `dtype` and unit stride in its last dim.
void check_rows(const Tensor& t, int ndim, DType dtype, const char* what) {
  PAGEDLLM_CHECK(t.data != nullptr, "" << what << " is empty");
  PAGEDLLM_CHECK(t.ndim == ndim, "" << what << " must have " << ndim << " dims, got " << t.ndim);
  PAGEDLLM_CHECK(t.dtype == dtype, "" << what << " must be " << dtype_name(dtype) << ", got "
                                        << dtype_name(t.dtype));
  PAGEDLLM_CHECK(t.shape[ndim - 1] <= 1 || t.stride[ndim - 1] == 1,
                 "" << what << " needs unit stride in its last dim");
}

void check_weight(const Tensor& t, int ndim, const char* what) {
  PAGEDLLM_CHECK(t.data != nullptr && t.ndim == ndim && is_weight_dtype(t.dtype),
                 "" << what << " must be a " << ndim << "-d float32/bfloat16 weight");
  PAGEDLLM_CHECK(t.shape[ndim - 1] <= 1 || t.stride[ndim - 1] == 1,
                 "" << what << " needs unit stride in its last dim");
}

void check_same_shape(const Tensor& a, const Tensor& b, const char* what) {
  PAGEDLLM_CHECK(a.ndim == b.ndim, "" << what << ": rank mismatch");
  for (int d = 0; d < a.ndim; ++d)
    PAGEDLLM_CHECK(a.shape[d] == b.shape[d], "" << what << ": dim " << d << " is " << a.shape[d]
                                                  << " vs " << b.shape[d]);
}

void check_indices(const Tensor& idx, int64_t limit, const char* what) {
  PAGEDLLM_CHECK(idx.ndim == 1 && idx.dtype == DType::kInt32 && idx.is_contiguous(),
                 "" << what << " must be a contiguous 1-d int32 tensor");
  const int32_t* p = idx.ptr<int32_t>();
  for (int64_t i = 0; i < idx.shape[0]; ++i)
    PAGEDLLM_CHECK(p[i] >= 0 && p[i] < limit,
                   "" << what << "[" << i << "] = " << p[i] << " is outside [0, " << limit << ")");
}

bool use_avx512() { return cpu::active_isa() >= Isa::kAvx512; }

}  // namespace

std::unique_ptr<CpuBackend> CpuBackend::create(int num_threads, std::string* error) {
  if (!cpu::isa_supported(Isa::kAvx2)) {
    if (error) {
      *error = "the cpu backend needs an x86-64 CPU with AVX2, FMA and F16C; this CPU lacks them";
    }
    return nullptr;
  }
  if (num_threads <= 0) {
    num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  return std::unique_ptr<CpuBackend>(new CpuBackend(num_threads));
}

CpuBackend::CpuBackend(int num_threads) : pool_(num_threads) { blas::set_num_threads(1); }

CpuBackend::~CpuBackend() { deallocate(scratch_); }

size_t CpuBackend::default_kv_cache_bytes() const {
  constexpr size_t kCap = size_t{8} << 30;
  long pages = sysconf(_SC_PHYS_PAGES);
  long page_size = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return size_t{1} << 30;
  return std::min(kCap, static_cast<size_t>(pages) * static_cast<size_t>(page_size) / 4);
}

// calloc (large blocks come from mmap, already zero) with the block start stored just below
// the 64-byte aligned address handed out.
void* CpuBackend::allocate(size_t nbytes) {
  void* raw = std::calloc(1, nbytes + 64);
  if (raw == nullptr) return nullptr;
  uintptr_t aligned = (reinterpret_cast<uintptr_t>(raw) + 64) & ~uintptr_t{63};
  reinterpret_cast<void**>(aligned)[-1] = raw;
  return reinterpret_cast<void*>(aligned);
}

void CpuBackend::deallocate(void* data) {
  if (data != nullptr) std::free(static_cast<void**>(data)[-1]);
}

void CpuBackend::copy_to_device(void* dst, const void* src_host, size_t nbytes) {
  if (nbytes > 0) std::memcpy(dst, src_host, nbytes);
}

void CpuBackend::copy_to_host(void* dst_host, const void* src, size_t nbytes) {
  if (nbytes > 0) std::memcpy(dst_host, src, nbytes);
}

Tensor CpuBackend::upload_weight(const Tensor& src, DType dtype, Buffer* storage) {
  if (src.dtype == dtype) return src;
  PAGEDLLM_CHECK(is_weight_dtype(dtype),
                 "weights convert to float32 or bfloat16, not " << dtype_name(dtype));
  PAGEDLLM_CHECK(is_weight_dtype(src.dtype) || src.dtype == DType::kFloat16,
                 "cannot convert a " << dtype_name(src.dtype) << " weight");
  PAGEDLLM_CHECK(src.is_contiguous(), "upload_weight needs a contiguous source");
  PAGEDLLM_CHECK(storage != nullptr, "upload_weight needs storage for a conversion");
  int64_t n = src.numel();
  *storage = allocate_buffer(static_cast<size_t>(n) * dtype_size(dtype));
  Tensor out = src;
  out.data = storage->data();
  out.dtype = dtype;
  const uint16_t* in16 = src.ptr<uint16_t>();
  const float* in32 = src.ptr<float>();
  auto body = [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      float f = src.dtype == DType::kFloat32    ? in32[i]
                : src.dtype == DType::kBFloat16 ? cpu::bf16_to_float(in16[i])
                                                : cpu::half_to_float(in16[i]);
      if (dtype == DType::kFloat32) {
        out.ptr<float>()[i] = f;
      } else {
        out.ptr<uint16_t>()[i] = cpu::float_to_bf16(f);
      }
    }
  };
  pool_.parallel_for(n, int64_t{1} << 16, std::cref(body));
  return out;
}

cpu::KernelContext CpuBackend::context(int64_t floats) {
  if (floats > scratch_floats_) {
    deallocate(scratch_);
    scratch_ = static_cast<float*>(allocate(static_cast<size_t>(floats) * sizeof(float)));
    PAGEDLLM_CHECK(scratch_ != nullptr, "out of memory for " << floats << " scratch floats");
    scratch_floats_ = floats;
  }
  return {&pool_, scratch_, scratch_floats_};
}

void CpuBackend::embedding(const EmbeddingParams& p) {
  check_weight(p.table, 2, "embedding table");
  check_rows(p.out, 2, DType::kFloat32, "embedding out");
  PAGEDLLM_CHECK(p.out.shape[0] == p.token_ids.shape[0] && p.out.shape[1] == p.table.shape[1],
                 "embedding out must be [T, H]");
  check_indices(p.token_ids, p.table.shape[0], "token_ids");
  cpu::embedding_avx2(p, context(0));
}

void CpuBackend::rms_norm(const RmsNormParams& p) {
  check_rows(p.x, 2, DType::kFloat32, "rms_norm x");
  check_rows(p.out, 2, DType::kFloat32, "rms_norm out");
  check_same_shape(p.x, p.out, "rms_norm out vs x");
  if (p.residual.data != nullptr) {
    check_rows(p.residual, 2, DType::kFloat32, "rms_norm residual");
    check_same_shape(p.x, p.residual, "rms_norm residual vs x");
  }
  check_weight(p.weight, 1, "rms_norm weight");
  PAGEDLLM_CHECK(p.weight.shape[0] == p.x.shape[1], "rms_norm weight must be [H]");
  cpu::rms_norm_avx2(p, context(0));
}

void CpuBackend::head_rms_norm(const HeadRmsNormParams& p) {
  check_rows(p.x, 3, DType::kFloat32, "head_rms_norm x");
  check_weight(p.weight, 1, "head_rms_norm weight");
  PAGEDLLM_CHECK(p.weight.shape[0] == p.x.shape[2], "head_rms_norm weight must be [D]");
  cpu::head_rms_norm_avx2(p, context(0));
}

Tensor CpuBackend::pack_linear_weight(const std::vector<Tensor>& parts, Buffer* storage) {
  PAGEDLLM_CHECK(!parts.empty() && storage != nullptr, "pack_linear_weight needs parts and storage");
  int64_t n = 0;
  for (const Tensor& t : parts) {
    check_weight(t, 2, "packed linear part");
    PAGEDLLM_CHECK(t.is_contiguous() && t.dtype == parts[0].dtype && t.shape[1] == parts[0].shape[1],
                   "packed linear parts must be contiguous [N_i, K] of one dtype and K");
    n += t.shape[0];
  }
  const int64_t k = parts[0].shape[1];
  PAGEDLLM_CHECK(n > 0 && k > 0, "packed linear weight is empty");
  *storage = allocate_buffer(static_cast<size_t>(cpu::packed_panels(n) * k * cpu::kPanelCols) *
                             dtype_size(parts[0].dtype));
  return cpu::pack_linear_rows(parts, storage->data(), pool_);
}

void CpuBackend::linear(const LinearParams& p) {
  check_rows(p.x, 2, DType::kFloat32, "linear x");
  check_rows(p.out, 2, DType::kFloat32, "linear out");
  if (cpu::is_packed_weight(p.weight)) {
    linear_packed(p);
    return;
  }
  check_weight(p.weight, 2, "linear weight");
  PAGEDLLM_CHECK(p.weight.is_contiguous(), "linear weight must be contiguous");
  int64_t m = p.x.shape[0], k = p.x.shape[1], n = p.weight.shape[0];
  PAGEDLLM_CHECK(p.weight.shape[1] == k, "linear weight is [" << n << ", " << p.weight.shape[1]
                                                              << "] but x has K = " << k);
  PAGEDLLM_CHECK(p.out.shape[0] == m && p.out.shape[1] == n, "linear out must be [M, N]");
  PAGEDLLM_CHECK(m <= 1 || (p.x.stride[0] >= k && p.out.stride[0] >= n), "linear rows overlap");
  if (p.bias.data != nullptr) {
    check_weight(p.bias, 1, "linear bias");
    PAGEDLLM_CHECK(p.bias.shape[0] == n, "linear bias must be [N]");
  }
  if (m == 0 || n == 0) return;
  int width = use_avx512() ? 16 : 8;
  cpu::KernelContext ctx = context(cpu::linear_scratch_floats(p, pool_.num_threads(), width));
  switch (cpu::active_isa()) {
    case Isa::kAvx512Bf16:
    case Isa::kAvx512: cpu::linear_avx512(p, ctx); break;
    default: cpu::linear_avx2(p, ctx); break;
  }
}

void CpuBackend::linear_packed(const LinearParams& p) {
  const Tensor& w = p.weight;
  PAGEDLLM_CHECK(w.data != nullptr && w.is_contiguous() && is_weight_dtype(w.dtype),
                 "packed linear weight must be a contiguous float32/bfloat16 [P, K, 32]");
  int64_t m = p.x.shape[0], k = p.x.shape[1], n = p.out.shape[1];
  PAGEDLLM_CHECK(w.shape[1] == k, "packed linear weight has K = " << w.shape[1] << " but x has " << k);
  PAGEDLLM_CHECK(p.out.shape[0] == m && w.shape[0] == cpu::packed_panels(n),
                 "packed linear weight has " << w.shape[0] << " panels, out needs N = " << n);
  PAGEDLLM_CHECK(m <= 1 || (p.x.stride[0] >= k && p.out.stride[0] >= n), "linear rows overlap");
  if (p.bias.data != nullptr) {
    check_weight(p.bias, 1, "linear bias");
    PAGEDLLM_CHECK(p.bias.shape[0] == n, "linear bias must be [N]");
  }
  if (m == 0 || n == 0) return;
  if (use_avx512()) {
    cpu::packed_linear_avx512(p, context(0));
  } else {
    cpu::packed_linear_avx2(p, context(0));
  }
}

void CpuBackend::rotary_embedding(const RotaryParams& p) {
  check_rows(p.q, 3, DType::kFloat32, "rotary q");
  check_rows(p.k, 3, DType::kFloat32, "rotary k");
  check_rows(p.cos_sin_cache, 2, DType::kFloat32, "cos_sin_cache");
  int64_t t = p.positions.shape[0], d = p.q.shape[2];
  PAGEDLLM_CHECK(d % 2 == 0 && p.k.shape[2] == d && p.cos_sin_cache.shape[1] == d,
                 "rotary head_dim mismatch or odd");
  PAGEDLLM_CHECK(p.q.shape[0] == t && p.k.shape[0] == t, "rotary q/k must have T rows");
  check_indices(p.positions, p.cos_sin_cache.shape[0], "positions");
  cpu::rotary_embedding_avx2(p, context(0));
}

void CpuBackend::silu_and_mul(const SiluAndMulParams& p) {
  check_rows(p.x, 2, DType::kFloat32, "silu_and_mul x");
  check_rows(p.out, 2, DType::kFloat32, "silu_and_mul out");
  PAGEDLLM_CHECK(p.x.shape[0] == p.out.shape[0] && p.x.shape[1] == 2 * p.out.shape[1],
                 "silu_and_mul needs x [T, 2I] and out [T, I]");
  cpu::silu_and_mul_avx2(p, context(0));
}

void CpuBackend::write_kv_cache(const WriteKvCacheParams& p) {
  check_rows(p.k, 3, DType::kFloat32, "write_kv_cache k");
  check_rows(p.v, 3, DType::kFloat32, "write_kv_cache v");
  check_same_shape(p.k, p.v, "write_kv_cache v vs k");
  const Tensor& kc = p.k_cache;
  PAGEDLLM_CHECK(kc.ndim == 4 && kc.is_contiguous() && is_weight_dtype(kc.dtype),
                 "k_cache must be a contiguous float32/bfloat16 [blocks, heads, block_size, D]");
  check_same_shape(kc, p.v_cache, "v_cache vs k_cache");
  PAGEDLLM_CHECK(p.v_cache.is_contiguous() && p.v_cache.dtype == kc.dtype, "v_cache layout");
  PAGEDLLM_CHECK(p.k.shape[1] == kc.shape[1] && p.k.shape[2] == kc.shape[3],
                 "k heads/head_dim do not match the cache");
  const Tensor& sm = p.slot_mapping;
  PAGEDLLM_CHECK(sm.ndim == 1 && sm.dtype == DType::kInt64 && sm.is_contiguous() &&
                     sm.shape[0] == p.k.shape[0],
                 "slot_mapping must be a contiguous int64 [T]");
  PAGEDLLM_CHECK(kc.shape[2] > 0, "cache block_size must be positive");
  int64_t num_slots = kc.shape[0] * kc.shape[2];
  for (int64_t t = 0; t < sm.shape[0]; ++t)
    PAGEDLLM_CHECK(sm.ptr<int64_t>()[t] < num_slots,
                   "slot_mapping[" << t << "] = " << sm.ptr<int64_t>()[t] << " >= " << num_slots);
  cpu::write_kv_cache_avx2(p, context(0));
}

void CpuBackend::paged_attention(const PagedAttentionParams& p) {
  check_rows(p.q, 3, DType::kFloat32, "attention q");
  check_rows(p.out, 3, DType::kFloat32, "attention out");
  check_same_shape(p.q, p.out, "attention out vs q");
  const Tensor& kc = p.k_cache;
  PAGEDLLM_CHECK(kc.ndim == 4 && kc.is_contiguous() && is_weight_dtype(kc.dtype),
                 "k_cache must be a contiguous float32/bfloat16 [blocks, heads, block_size, D]");
  check_same_shape(kc, p.v_cache, "v_cache vs k_cache");
  PAGEDLLM_CHECK(p.v_cache.is_contiguous() && p.v_cache.dtype == kc.dtype, "v_cache layout");
  int64_t hq = p.q.shape[1], hkv = kc.shape[1], bs = kc.shape[2];
  PAGEDLLM_CHECK(bs > 0 && kc.shape[3] > 0, "cache block_size and head_dim must be positive");
  PAGEDLLM_CHECK(p.q.shape[2] == kc.shape[3], "q head_dim does not match the cache");
  PAGEDLLM_CHECK(hkv > 0 && hq % hkv == 0, "num_q_heads " << hq << " is not a multiple of "
                                                          << "num_kv_heads " << hkv);
  const Tensor& bt = p.block_tables;
  int64_t b = p.seq_lens.shape[0];
  PAGEDLLM_CHECK(bt.ndim == 2 && bt.dtype == DType::kInt32 && bt.shape[0] >= b &&
                     (bt.shape[1] <= 1 || bt.stride[1] == 1),
                 "block_tables must be int32 [B, max_blocks_per_seq]");
  PAGEDLLM_CHECK(p.seq_lens.dtype == DType::kInt32 && p.seq_lens.is_contiguous() &&
                     p.query_start_loc.dtype == DType::kInt32 &&
                     p.query_start_loc.is_contiguous() && p.query_start_loc.shape[0] == b + 1,
                 "seq_lens must be int32 [B] and query_start_loc int32 [B + 1]");
  const int32_t* qsl = p.query_start_loc.ptr<int32_t>();
  const int32_t* lens = p.seq_lens.ptr<int32_t>();
  PAGEDLLM_CHECK(qsl[0] >= 0 && qsl[b] <= p.q.shape[0], "query_start_loc outside [0, T]");
  for (int64_t i = 0; i < b; ++i) {
    int64_t q_len = qsl[i + 1] - qsl[i];
    PAGEDLLM_CHECK(q_len >= 0 && lens[i] >= q_len, "sequence " << i << ": q_len " << q_len
                                                               << ", seq_len " << lens[i]);
    if (q_len == 0) continue;
    int64_t blocks = (lens[i] + bs - 1) / bs;
    PAGEDLLM_CHECK(blocks <= bt.shape[1], "sequence " << i << " needs " << blocks << " blocks");
    const int32_t* row = bt.ptr<int32_t>() + i * bt.stride[0];
    for (int64_t j = 0; j < blocks; ++j)
      PAGEDLLM_CHECK(row[j] >= 0 && row[j] < kc.shape[0],
                     "block_tables[" << i << "][" << j << "] = " << row[j] << " out of range");
  }
  cpu::AttentionPlan plan = cpu::plan_attention(p, pool_.num_threads());
  cpu::KernelContext ctx = context(plan.scratch_floats);
  if (use_avx512()) {
    cpu::paged_attention_avx512(p, plan, ctx);
  } else {
    cpu::paged_attention_avx2(p, plan, ctx);
  }
}

void CpuBackend::gather_rows(const GatherRowsParams& p) {
  PAGEDLLM_CHECK(p.x.ndim == 2 && p.out.ndim == 2 && p.x.dtype == p.out.dtype,
                 "gather_rows needs 2-d x and out of one dtype");
  PAGEDLLM_CHECK(p.x.stride[1] == 1 && p.out.stride[1] == 1, "gather_rows rows must be dense");
  PAGEDLLM_CHECK(p.out.shape[0] == p.indices.shape[0] && p.out.shape[1] == p.x.shape[1],
                 "gather_rows out must be [R, H]");
  check_indices(p.indices, p.x.shape[0], "gather_rows indices");
  cpu::gather_rows_avx2(p, context(0));
}

}  // namespace pagedllm
