// CpuBackend: the always-built backend. Activations are float32; weights float32 or bfloat16;
// the KV cache float32 or bfloat16. Ops run synchronously on the caller's thread plus a
// persistent ThreadPool; each call dispatches to the kernels of the ISA tier active at call
// time (isa.h). Invariants: all parallelism comes from the pool (OpenBLAS runs
// single-threaded inside pool tasks), and the scratch buffer only grows, so steady-state op
// calls never allocate. Not thread-safe: one engine thread drives a backend.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "util/thread_pool.h"

namespace pagedllm {

class CpuBackend : public Backend {
 public:
  // num_threads <= 0 means std::thread::hardware_concurrency(). Returns nullptr with *error
  // set when this CPU lacks the minimum ISA (x86-64 with AVX2 + FMA + F16C).
  static std::unique_ptr<CpuBackend> create(int num_threads, std::string* error);
  ~CpuBackend() override;

  int num_threads() const { return pool_.num_threads(); }

  std::string name() const override { return "cpu"; }
  DType activation_dtype(DType weight_dtype) const override { return DType::kFloat32; }
  // min(8 GiB, physical memory / 4).
  size_t default_kv_cache_bytes() const override;

  void* allocate(size_t nbytes) override;
  void deallocate(void* data) override;
  void copy_to_device(void* dst, const void* src_host, size_t nbytes) override;
  void copy_to_host(void* dst_host, const void* src, size_t nbytes) override;
  void synchronize() override {}

  Tensor upload_weight(const Tensor& src, DType dtype, Buffer* storage) override;
  // Packs into the panel layout of packed_weight.h (float32 or bfloat16, as the parts).
  Tensor pack_linear_weight(const std::vector<Tensor>& parts, Buffer* storage) override;

  void embedding(const EmbeddingParams& p) override;
  void rms_norm(const RmsNormParams& p) override;
  void head_rms_norm(const HeadRmsNormParams& p) override;
  void linear(const LinearParams& p) override;
  void rotary_embedding(const RotaryParams& p) override;
  void silu_and_mul(const SiluAndMulParams& p) override;
  void write_kv_cache(const WriteKvCacheParams& p) override;
  void paged_attention(const PagedAttentionParams& p) override;
  void gather_rows(const GatherRowsParams& p) override;
  void copy_blocks(const CopyBlocksParams& p) override;  // in copy_blocks.cc

 private:
  explicit CpuBackend(int num_threads);
  // A context whose scratch holds at least `floats` floats (grows the buffer if needed).
  cpu::KernelContext context(int64_t floats);
  // linear() on a weight from pack_linear_weight.
  void linear_packed(const LinearParams& p);

  ThreadPool pool_;
  float* scratch_ = nullptr;  // [scratch_floats_], 64-byte aligned
  int64_t scratch_floats_ = 0;
};

}  // namespace pagedllm
