// GpuBackend: the Backend of one GPU (CUDA; the HIP build compiles the same sources through its
// compat header). Activations in the weight dtype (bfloat16, float16 or float32), weights
// uploaded once and converted on the device, dense GEMMs through GpuGemm (cuBLAS / hipBLAS),
// every other op through its launch_<op> (kernels/<op>.cuh).
//
// Invariants: every op and copy is enqueued in order on one non-blocking stream owned by the
// backend (never the legacy default stream); copy_to_host and synchronize wait for it. Every
// public method first makes device_ current, so the engine may call from any one thread at a
// time. Allocations are zero-filled and counted in stats_ (memory_info). Ops never allocate,
// synchronize or read device memory on the host (graph capture). Not thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "attention_dispatch.cuh"
#include "backend/allocation_stats.h"
#include "backend/backend.h"
#include "gemm.cuh"
#include "gpu_compat.cuh"
#include "gpu_graphs.cuh"

namespace pagedllm {

class GpuBackend : public Backend {
 public:
  // See create_gpu_backend (backend/gpu_backend_factory.h) for the errors.
  static std::unique_ptr<GpuBackend> create(int device_index, const BackendOptions& options, std::string* error);
  ~GpuBackend() override;

  int device_index() const { return device_; }
  gpuStream_t stream() const { return stream_; }

  std::string name() const override;  // "cuda:N"
  // bfloat16 -> bfloat16, float16 -> float16, anything else -> float32.
  DType activation_dtype(DType weight_dtype) const override;
  // 90% of the device's free memory minus 10% of its total (a starting point; the engine sizes
  // the KV cache by profiling, profiles_memory()).
  size_t default_kv_cache_bytes() const override;

  // cudaMalloc (256-byte aligned) zero-filled on the stream; nullptr when out of memory.
  void* allocate(size_t nbytes) override;
  void deallocate(void* data) override;
  // From pageable memory: enqueued, and src_host has been consumed when the call returns (large
  // copies go through two page-locked chunks, small ones through the runtime's staging). From
  // page-locked memory: synchronous (waits for the stream). The caller may reuse src_host
  // either way. Not capturable: use copy_to_device_async.
  void copy_to_device(void* dst, const void* src_host, size_t nbytes) override;
  // Enqueues the copy and waits for the stream.
  void copy_to_host(void* dst_host, const void* src, size_t nbytes) override;
  void synchronize() override;

  bool profiles_memory() const override { return true; }
  DeviceMemoryInfo memory_info() override;
  void reset_peak_memory() override { stats_.reset_peak(); }
  // Page-locked host memory (nullptr when none is left).
  void* allocate_host(size_t nbytes) override;
  void deallocate_host(void* data) override;
  void copy_to_device_async(void* dst, const void* src_host, size_t nbytes) override;

  // Copies src to the device; converts there (launch_convert) when dtype differs from src.dtype.
  // float32/bfloat16/float16 -> float32/bfloat16/float16. Throws OutOfMemoryError.
  Tensor upload_weight(const Tensor& src, DType dtype, Buffer* storage) override;
  // Two or more parts: one contiguous [sum N_i, K] weight (one GEMM for q/k/v or gate/up). One
  // part: empty (the part is already in the GEMM's layout).
  Tensor pack_linear_weight(const std::vector<Tensor>& parts, Buffer* storage) override;

  void embedding(const EmbeddingParams& p) override;
  void rms_norm(const RmsNormParams& p) override;
  void head_rms_norm(const HeadRmsNormParams& p) override;
  void linear(const LinearParams& p) override;
  void rotary_embedding(const RotaryParams& p) override;
  void silu_and_mul(const SiluAndMulParams& p) override;
  void write_kv_cache(const WriteKvCacheParams& p) override;
  void paged_attention(const PagedAttentionParams& p) override;
  void plan_attention(const AttentionPlanInputs& in) override {
    use_device();
    attention_->plan(in, stream_);
  }
  void gather_rows(const GatherRowsParams& p) override;
  void copy_blocks(const CopyBlocksParams& p) override;
  bool supports_device_sampling() const override { return true; }
  void sample(const SampleParams& p) override;

  // Graphs on the backend's stream (gpu_graphs.cuh).
  bool supports_graphs() const override { return true; }
  void begin_capture() override {
    use_device();
    graphs_.begin_capture(stream_);
  }
  int64_t end_capture() override {
    use_device();
    return graphs_.end_capture(stream_);
  }
  void replay_graph(int64_t graph_id) override {
    use_device();
    graphs_.replay(graph_id, stream_);
  }

 private:
  GpuBackend(int device_index, const BackendOptions& options);
  // Makes device_ the calling thread's current device.
  void use_device() const;
  // Device memory for a weight (not zero-filled); throws OutOfMemoryError.
  Buffer allocate_weight(size_t nbytes);
  // gpuMalloc counted in stats_ (not zero-filled); nullptr when out of memory.
  void* malloc_device(size_t nbytes);
  // copy_to_device of a large pageable source through staging_ (consumed on return).
  void copy_staged(void* dst, const void* src_host, size_t nbytes);

  static constexpr size_t kStagedCopyMinBytes = size_t{8} << 20;
  static constexpr size_t kStagingChunkBytes = size_t{32} << 20;

  int device_ = 0;
  BackendOptions options_;
  gpuStream_t stream_ = nullptr;
  std::unique_ptr<GpuGemm> gemm_;
  std::unique_ptr<GpuAttention> attention_;  // options_.attention_backend
  AllocationStats stats_;
  bool staging_tried_ = false;
  void* staging_[2] = {nullptr, nullptr};  // [kStagingChunkBytes] page-locked, made on first use
  gpuEvent_t staged_[2] = {nullptr, nullptr};  // the last copy out of staging_[i] finished
  GpuGraphs graphs_;  // destroyed after the stream, with device_ current (~GpuBackend)
};

}  // namespace pagedllm
