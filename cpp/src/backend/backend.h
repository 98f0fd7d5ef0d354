// Backend: the device a model runs on. The CPU backend is always built; CUDA and HIP backends
// implement the same interface. The model, runner and engine talk to a device only through it.
//
// Contract: op calls are enqueued in order on the backend's stream and may run asynchronously;
// copy_to_host and synchronize wait for them. Ops never allocate, synchronize or read host
// state, so a GPU backend can capture a decode step in a graph. Preconditions on shapes and
// dtypes are checked with PAGEDLLM_CHECK (they are bugs in the caller, not user errors).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/attention_plan.h"
#include "backend/ops.h"
#include "backend/tensor.h"

namespace pagedllm {

class Backend;

// Memory of a backend's device, in bytes. total and free describe the whole device (all
// processes); allocated and peak count this backend's live allocations and their high-water
// mark since the last reset_peak_memory(). 0 means unknown.
struct DeviceMemoryInfo {
  int64_t total_bytes = 0;
  int64_t free_bytes = 0;
  int64_t allocated_bytes = 0;
  int64_t peak_allocated_bytes = 0;
};

// Host memory (physical total, MemAvailable as free; allocated and peak unknown).
DeviceMemoryInfo host_memory_info();

// An owning device allocation; freed through the backend that made it.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend* backend, void* data, size_t nbytes) : backend_(backend), data_(data), nbytes_(nbytes) {}
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Tensor as_tensor(DType dtype, std::initializer_list<int64_t> shape) const;

 private:
  Backend* backend_ = nullptr;
  void* data_ = nullptr;
  size_t nbytes_ = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;  // "cpu", "cuda:0", ...
  // The activation dtype this backend computes in for a given weight dtype.
  virtual DType activation_dtype(DType weight_dtype) const = 0;
  // Bytes of device memory the KV cache may use by default (before any user setting).
  virtual size_t default_kv_cache_bytes() const = 0;

  // Memory. allocate returns 64-byte aligned, zero-filled memory; nullptr if out of memory.
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* data) = 0;
  Buffer allocate_buffer(size_t nbytes);  // fails with a CHECK on out-of-memory
  virtual void copy_to_device(void* dst, const void* src_host, size_t nbytes) = 0;
  virtual void copy_to_host(void* dst_host, const void* src, size_t nbytes) = 0;
  virtual void synchronize() = 0;

  // True when the device has its own memory that the engine sizes the KV cache from by
  // profiling (engine/kv_cache_sizing.h) instead of default_kv_cache_bytes().
  virtual bool profiles_memory() const { return false; }
  virtual DeviceMemoryInfo memory_info() { return host_memory_info(); }
  virtual void reset_peak_memory() {}

  // Host memory for copy_to_device_async (page-locked on a GPU); nullptr if out of memory.
  virtual void* allocate_host(size_t nbytes) { return std::aligned_alloc(64, (nbytes + 63) / 64 * 64); }
  virtual void deallocate_host(void* data) { std::free(data); }
  // Enqueues a copy from src_host (from allocate_host) without waiting for it: src_host must
  // stay unchanged until the next copy_to_host or synchronize, which order after the copy.
  virtual void copy_to_device_async(void* dst, const void* src_host, size_t nbytes) {
    copy_to_device(dst, src_host, nbytes);
  }

  // Makes a weight usable by ops: src lives in host memory (often an mmapped file) with dtype
  // src.dtype; the result has dtype `dtype`. A backend may return a view of src without a copy
  // when no conversion or upload is needed (the CPU with matching dtype); then src must outlive
  // the result. Conversions supported: float32/bfloat16/float16 -> float32 or bfloat16.
  virtual Tensor upload_weight(const Tensor& src, DType dtype, Buffer* storage) = 0;
  // Optional: a weight for linear() equal to the row concatenation of `parts` ([N_i, K] each,
  // one dtype, results of upload_weight), stored once in this backend's preferred GEMM layout
  // in *storage; the parts are not needed afterwards. Returns an empty Tensor (data == nullptr)
  // when the backend has no such layout: the caller then keeps using the parts.
  virtual Tensor pack_linear_weight(const std::vector<Tensor>& parts, Buffer* storage) {
    return Tensor();
  }

  // Model ops (see ops.h for shapes and semantics).
  virtual void embedding(const EmbeddingParams& p) = 0;
  virtual void rms_norm(const RmsNormParams& p) = 0;
  virtual void head_rms_norm(const HeadRmsNormParams& p) = 0;
  virtual void linear(const LinearParams& p) = 0;
  virtual void rotary_embedding(const RotaryParams& p) = 0;
  virtual void silu_and_mul(const SiluAndMulParams& p) = 0;
  virtual void write_kv_cache(const WriteKvCacheParams& p) = 0;
  virtual void paged_attention(const PagedAttentionParams& p) = 0;
  // Host part of the next step's attention (e.g. FlashInfer's plan), called by the runner once
  // per step after staging its inputs and before the forward pass, never during graph capture.
  virtual void plan_attention(const AttentionPlanInputs& in) {}
  virtual void gather_rows(const GatherRowsParams& p) = 0;
  virtual void copy_blocks(const CopyBlocksParams& p) = 0;

  // Device sampling (ops.h SampleParams): a backend that returns true samples on the device and
  // the engine keeps logits there; the default (the CPU) samples on the host with Sampler.
  virtual bool supports_device_sampling() const { return false; }
  virtual void sample(const SampleParams& p) { PAGEDLLM_CHECK(false, "backend " << name() << " has no device sampling"); }

  // Graphs (CUDA/HIP graphs): the ops enqueued between begin_capture() and end_capture() are
  // recorded instead of run; replay_graph(id) runs them again with the same device pointers
  // and the same host-side arguments, so captured ops must read every per-step value from
  // device memory. No synchronize, copy_to_host or allocation between begin and end. A backend
  // without graphs returns false from supports_graphs() and CHECK-fails on the others.
  virtual bool supports_graphs() const { return false; }
  virtual void begin_capture() { PAGEDLLM_CHECK(false, "backend " << name() << " has no graphs"); }
  virtual int64_t end_capture() {  // returns the graph id, >= 0
    PAGEDLLM_CHECK(false, "backend " << name() << " has no graphs");
    return -1;
  }
  virtual void replay_graph(int64_t graph_id) { PAGEDLLM_CHECK(false, "backend " << name() << " has no graphs"); }
};

// Thrown when device memory that must be had cannot be allocated (allocate_buffer, weight
// upload); the engine returns it as StatusCode::kResourceExhausted with this message.
class OutOfMemoryError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// "not enough GPU memory: need X, free Y ..." for an allocation of nbytes on `backend`.
std::string out_of_memory_message(Backend& backend, size_t nbytes);

// Options of create_backend beyond the device string.
struct BackendOptions {
  int num_threads = 0;                     // CPU compute threads; 0 = all cores
  std::string attention_backend = "auto";  // GPU attention kernels: "auto", "flashinfer", "native"
};

// Names of the backends compiled into this build: "cpu", then "cuda" with the CUDA backend.
std::vector<std::string> built_backends();

// Creates the backend for a device string: "cpu", "cuda" (= "cuda:0") or "cuda:N". Returns
// nullptr with *error set when the string is malformed or names an unknown device, this build
// has no backend for it, or the device is unavailable (no GPU, index out of range, ...).
std::unique_ptr<Backend> create_backend(const std::string& device, const BackendOptions& options,
                                        std::string* error);
std::unique_ptr<Backend> create_backend(const std::string& device, int num_threads, std::string* error);

}  // namespace pagedllm
