// GpuBackend: device selection, memory, copies and weight upload (the ops are in
// gpu_backend_ops.cu). See gpu_backend.cuh for the invariants.
#include "gpu_backend.cuh"

#include <algorithm>
#include <cstring>

#include "backend/gpu_backend_factory.h"
#include "kernels/convert.cuh"

namespace pagedllm {
namespace {

bool is_float(DType d) { return d == DType::kFloat32 || d == DType::kBFloat16 || d == DType::kFloat16; }

}  // namespace

std::unique_ptr<Backend> create_gpu_backend(int device_index, const BackendOptions& options, std::string* error) {
  return GpuBackend::create(device_index, options, error);
}

std::unique_ptr<GpuBackend> GpuBackend::create(int device_index, const BackendOptions& options, std::string* error) {
  auto fail = [&](const std::string& message) {
    if (error != nullptr) *error = message;
    return std::unique_ptr<GpuBackend>();
  };
  const std::string platform = PAGEDLLM_GPU_PLATFORM_NAME;
  const std::string device = platform + ":" + std::to_string(device_index);
  AttentionBackendKind attention = AttentionBackendKind::kNative;
  std::string attention_error;
  if (!resolve_attention_backend(options.attention_backend, &attention, &attention_error)) return fail(attention_error);
  int count = 0;
  gpuError_t err = gpuGetDeviceCount(&count);
  if (err != gpuSuccess) {
    gpuGetLastError();
    return fail("no " + platform + " device is available: " + gpuGetErrorString(err) +
                " (is a GPU driver installed? run on a machine with a GPU or use device='cpu')");
  }
  if (count <= 0) return fail("no " + platform + " device is available (the runtime found 0 devices); use device='cpu'");
  if (device_index < 0 || device_index >= count) {
    return fail("device '" + device + "' does not exist: this machine has " + std::to_string(count) + " " +
                platform + " device" + (count == 1 ? "" : "s") + " (" + platform + ":0" +
                (count > 1 ? " .. " + platform + ":" + std::to_string(count - 1) : std::string()) + ")");
  }
  std::unique_ptr<GpuBackend> b(new GpuBackend(device_index, options));
  err = gpuSetDevice(device_index);
  if (err == gpuSuccess) err = gpuStreamCreateWithFlags(&b->stream_, gpuStreamNonBlocking);
  if (err != gpuSuccess) {
    gpuGetLastError();
    b->stream_ = nullptr;
    return fail("cannot initialize " + device + ": " + gpuGetErrorString(err));
  }
  std::string gemm_error;
  b->gemm_ = GpuGemm::create(b->stream_, &gemm_error);
  if (b->gemm_ == nullptr) return fail(device + ": " + gemm_error);
  b->attention_ = std::make_unique<GpuAttention>(attention);
  return b;
}

GpuBackend::GpuBackend(int device_index, const BackendOptions& options) : device_(device_index), options_(options) {}

GpuBackend::~GpuBackend() {
  if (stream_ == nullptr) return;
  gpuSetDevice(device_);
  gpuStreamSynchronize(stream_);
  for (int i = 0; i < 2; ++i) {
    if (staging_[i] != nullptr) gpuFreeHost(staging_[i]);
    if (staged_[i] != nullptr) gpuEventDestroy(staged_[i]);
  }
  attention_.reset();
  gemm_.reset();
  gpuStreamDestroy(stream_);
}

void GpuBackend::use_device() const { PAGEDLLM_GPU_CHECK(gpuSetDevice(device_)); }

std::string GpuBackend::name() const { return std::string(PAGEDLLM_GPU_PLATFORM_NAME) + ":" + std::to_string(device_); }

DType GpuBackend::activation_dtype(DType weight_dtype) const {
  if (weight_dtype == DType::kBFloat16 || weight_dtype == DType::kFloat16) return weight_dtype;
  return DType::kFloat32;
}

DeviceMemoryInfo GpuBackend::memory_info() {
  use_device();
  size_t free_bytes = 0, total_bytes = 0;
  PAGEDLLM_GPU_CHECK(gpuMemGetInfo(&free_bytes, &total_bytes));
  DeviceMemoryInfo info;
  info.total_bytes = static_cast<int64_t>(total_bytes);
  info.free_bytes = static_cast<int64_t>(free_bytes);
  info.allocated_bytes = stats_.allocated_bytes();
  info.peak_allocated_bytes = stats_.peak_bytes();
  return info;
}

size_t GpuBackend::default_kv_cache_bytes() const {
  use_device();
  size_t free_bytes = 0, total_bytes = 0;
  PAGEDLLM_GPU_CHECK(gpuMemGetInfo(&free_bytes, &total_bytes));
  const double budget = 0.9 * static_cast<double>(free_bytes) - 0.1 * static_cast<double>(total_bytes);
  return budget > 0 ? static_cast<size_t>(budget) : 0;
}

void* GpuBackend::malloc_device(size_t nbytes) {
  use_device();
  void* data = nullptr;
  const gpuError_t err = gpuMalloc(&data, std::max<size_t>(nbytes, 1));
  if (err != gpuSuccess) {
    gpuGetLastError();  // clears the (non-sticky) allocation error
    PAGEDLLM_CHECK(err == gpuErrorMemoryAllocation, "gpuMalloc(" << nbytes << ") failed: " << gpuGetErrorString(err));
    return nullptr;
  }
  stats_.on_allocate(data, nbytes);
  return data;
}

void* GpuBackend::allocate(size_t nbytes) {
  void* data = malloc_device(nbytes);
  if (data != nullptr) PAGEDLLM_GPU_CHECK(gpuMemsetAsync(data, 0, nbytes, stream_));
  return data;
}

// Called from Buffer's destructor: reports nothing (a failing free means the context is already
// broken, and the next op or synchronize reports that).
void GpuBackend::deallocate(void* data) {
  if (data == nullptr) return;
  stats_.on_deallocate(data);
  if (gpuSetDevice(device_) != gpuSuccess || gpuFree(data) != gpuSuccess) gpuGetLastError();
}

Buffer GpuBackend::allocate_weight(size_t nbytes) {
  void* data = malloc_device(nbytes);
  if (data == nullptr) throw OutOfMemoryError(out_of_memory_message(*this, nbytes) + " while loading the weights");
  return Buffer(this, data, nbytes);
}

void GpuBackend::copy_to_device(void* dst, const void* src_host, size_t nbytes) {
  if (nbytes == 0) return;
  use_device();
  if (gpu_is_page_locked(src_host)) {
    PAGEDLLM_GPU_CHECK(gpuMemcpyAsync(dst, src_host, nbytes, gpuMemcpyHostToDevice, stream_));
    PAGEDLLM_GPU_CHECK(gpuStreamSynchronize(stream_));
  } else if (nbytes >= kStagedCopyMinBytes) {
    copy_staged(dst, src_host, nbytes);
  } else {
    PAGEDLLM_GPU_CHECK(gpuMemcpyAsync(dst, src_host, nbytes, gpuMemcpyHostToDevice, stream_));
  }
}

// Double buffering: the host copies chunk i + 1 into one page-locked buffer while the DMA of
// chunk i reads the other; a buffer is refilled only after its event says its DMA finished.
void GpuBackend::copy_staged(void* dst, const void* src_host, size_t nbytes) {
  if (!staging_tried_) {
    staging_tried_ = true;
    for (int i = 0; i < 2; ++i) {
      if (gpuMallocHost(&staging_[i], kStagingChunkBytes) != gpuSuccess) {
        gpuGetLastError();
        staging_[i] = nullptr;
      }
      PAGEDLLM_GPU_CHECK(gpuEventCreateWithFlags(&staged_[i], gpuEventDisableTiming));
    }
  }
  if (staging_[0] == nullptr || staging_[1] == nullptr) {  // no page-locked memory: the runtime stages
    PAGEDLLM_GPU_CHECK(gpuMemcpyAsync(dst, src_host, nbytes, gpuMemcpyHostToDevice, stream_));
    return;
  }
  const char* src = static_cast<const char*>(src_host);
  char* out = static_cast<char*>(dst);
  for (size_t off = 0, i = 0; off < nbytes; off += kStagingChunkBytes, i ^= 1) {
    const size_t n = std::min(kStagingChunkBytes, nbytes - off);
    PAGEDLLM_GPU_CHECK(gpuEventSynchronize(staged_[i]));
    std::memcpy(staging_[i], src + off, n);
    PAGEDLLM_GPU_CHECK(gpuMemcpyAsync(out + off, staging_[i], n, gpuMemcpyHostToDevice, stream_));
    PAGEDLLM_GPU_CHECK(gpuEventRecord(staged_[i], stream_));
  }
}

void GpuBackend::copy_to_device_async(void* dst, const void* src_host, size_t nbytes) {
  if (nbytes == 0) return;
  use_device();
  PAGEDLLM_GPU_CHECK(gpuMemcpyAsync(dst, src_host, nbytes, gpuMemcpyHostToDevice, stream_));
}

void GpuBackend::copy_to_host(void* dst_host, const void* src, size_t nbytes) {
  use_device();
  if (nbytes > 0) PAGEDLLM_GPU_CHECK(gpuMemcpyAsync(dst_host, src, nbytes, gpuMemcpyDeviceToHost, stream_));
  PAGEDLLM_GPU_CHECK(gpuStreamSynchronize(stream_));
}

void GpuBackend::synchronize() {
  use_device();
  PAGEDLLM_GPU_CHECK(gpuStreamSynchronize(stream_));
}

void* GpuBackend::allocate_host(size_t nbytes) {
  use_device();
  void* data = nullptr;
  if (gpuMallocHost(&data, std::max<size_t>(nbytes, 1)) != gpuSuccess) {
    gpuGetLastError();
    return nullptr;
  }
  return data;
}

void GpuBackend::deallocate_host(void* data) {
  if (data != nullptr && gpuFreeHost(data) != gpuSuccess) gpuGetLastError();
}

Tensor GpuBackend::upload_weight(const Tensor& src, DType dtype, Buffer* storage) {
  PAGEDLLM_CHECK(is_float(src.dtype) && is_float(dtype),
                 "upload_weight converts float32/bfloat16/float16, not " << dtype_name(src.dtype) << " -> "
                                                                         << dtype_name(dtype));
  PAGEDLLM_CHECK(src.data != nullptr && src.is_contiguous(), "upload_weight needs a contiguous host source");
  PAGEDLLM_CHECK(storage != nullptr, "upload_weight needs storage");
  Tensor out = src;
  out.dtype = dtype;
  *storage = allocate_weight(out.nbytes());
  out.data = storage->data();
  if (src.dtype == dtype) {
    copy_to_device(out.data, src.data, src.nbytes());
    return out;
  }
  // The source bytes go to a temporary device buffer, freed once the conversion has run.
  Buffer staged = allocate_weight(src.nbytes());
  Tensor on_device = src;
  on_device.data = staged.data();
  copy_to_device(on_device.data, src.data, src.nbytes());
  launch_convert({on_device, out}, stream_);
  synchronize();
  return out;
}

Tensor GpuBackend::pack_linear_weight(const std::vector<Tensor>& parts, Buffer* storage) {
  if (parts.size() < 2) return Tensor();
  PAGEDLLM_CHECK(storage != nullptr, "pack_linear_weight needs storage");
  int64_t rows = 0;
  for (const Tensor& t : parts) {
    PAGEDLLM_CHECK(t.data != nullptr && t.ndim == 2 && t.is_contiguous() && t.dtype == parts[0].dtype &&
                       t.shape[1] == parts[0].shape[1],
                   "packed linear parts must be contiguous [N_i, K] of one dtype and K");
    rows += t.shape[0];
  }
  const int64_t k = parts[0].shape[1];
  *storage = allocate_weight(static_cast<size_t>(rows * k) * dtype_size(parts[0].dtype));
  Tensor packed = Tensor::contiguous(storage->data(), parts[0].dtype, {rows, k});
  char* dst = static_cast<char*>(storage->data());
  for (const Tensor& t : parts) {
    PAGEDLLM_GPU_CHECK(gpuMemcpyAsync(dst, t.data, t.nbytes(), gpuMemcpyDeviceToDevice, stream_));
    dst += t.nbytes();
  }
  // The caller frees the parts on return: their copies must have run.
  synchronize();
  return packed;
}

}  // namespace pagedllm
