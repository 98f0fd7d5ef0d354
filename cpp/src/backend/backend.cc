// Buffer ownership and backend creation (device strings, the GPU factory hook, build info).
// Invariant: a Buffer with data != nullptr holds the backend that allocated it and frees
// through it exactly once.
#include "backend/backend.h"

#include <cstdio>

#include "backend/cpu/cpu_backend.h"
#include "pagedllm/build_info.h"
#if defined(PAGEDLLM_WITH_CUDA) || defined(PAGEDLLM_WITH_HIP)
#include "backend/gpu_backend_factory.h"
#endif

namespace pagedllm {

Buffer::~Buffer() {
  if (backend_ != nullptr && data_ != nullptr) backend_->deallocate(data_);
}

Buffer::Buffer(Buffer&& other) noexcept
    : backend_(other.backend_), data_(other.data_), nbytes_(other.nbytes_) {
  other.backend_ = nullptr;
  other.data_ = nullptr;
  other.nbytes_ = 0;
}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    if (backend_ != nullptr && data_ != nullptr) backend_->deallocate(data_);
    backend_ = other.backend_;
    data_ = other.data_;
    nbytes_ = other.nbytes_;
    other.backend_ = nullptr;
    other.data_ = nullptr;
    other.nbytes_ = 0;
  }
  return *this;
}

Tensor Buffer::as_tensor(DType dtype, std::initializer_list<int64_t> shape) const {
  Tensor t = Tensor::contiguous(data_, dtype, shape);
  PAGEDLLM_CHECK(t.nbytes() <= nbytes_, "a " << t.nbytes() << "-byte tensor does not fit in a "
                                             << nbytes_ << "-byte buffer");
  return t;
}

Buffer Backend::allocate_buffer(size_t nbytes) {
  void* data = allocate(nbytes);
  if (data == nullptr) throw OutOfMemoryError(out_of_memory_message(*this, nbytes));
  return Buffer(this, data, nbytes);
}

namespace {

std::string gib(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return text;
}

// Parses "<digits>" into *index (at most 6 digits); false when malformed.
bool parse_index(const std::string& text, int* index) {
  if (text.empty() || text.size() > 6) return false;
  for (char c : text)
    if (c < '0' || c > '9') return false;
  *index = std::stoi(text);
  return true;
}

}  // namespace

std::string out_of_memory_message(Backend& backend, size_t nbytes) {
  const DeviceMemoryInfo m = backend.memory_info();
  const std::string kind = backend.name() == "cpu" ? "host" : "GPU";
  std::string message = "not enough " + kind + " memory: need " + gib(static_cast<int64_t>(nbytes));
  if (m.total_bytes > 0) {
    message += ", free " + gib(m.free_bytes) + " of " + gib(m.total_bytes) + " on " + backend.name();
  }
  if (m.allocated_bytes > 0) message += " (pagedllm holds " + gib(m.allocated_bytes) + ")";
  return message;
}

std::vector<std::string> built_backends() {
#if defined(PAGEDLLM_WITH_CUDA)
  return {"cpu", "cuda"};
#elif defined(PAGEDLLM_WITH_HIP)
  return {"cpu", "hip"};
#else
  return {"cpu"};
#endif
}

BuildInfo build_info() {
  BuildInfo info;
  info.backends = built_backends();
#if defined(PAGEDLLM_CUDA_COMPILER_FOUND)
  info.cuda_compiler_found = true;
#endif
  return info;
}

std::unique_ptr<Backend> create_backend(const std::string& device, const BackendOptions& options,
                                        std::string* error) {
  std::string err;
  const std::string cuda_prefix = "cuda:";
  if (device == "cpu") {
    std::unique_ptr<CpuBackend> cpu = CpuBackend::create(options.num_threads, &err);
    if (cpu != nullptr) return cpu;
  } else if (device == "cuda" || device.compare(0, cuda_prefix.size(), cuda_prefix) == 0) {
    int index = 0;
    if (device != "cuda" && !parse_index(device.substr(cuda_prefix.size()), &index)) {
      err = "malformed device '" + device + "': use 'cuda' or 'cuda:N' with a device index N >= 0";
    } else {
#if defined(PAGEDLLM_WITH_CUDA) || defined(PAGEDLLM_WITH_HIP)
      std::unique_ptr<Backend> gpu = create_gpu_backend(index, options, &err);
      if (gpu != nullptr) return gpu;
#else
      err = "device '" + device + "' is not available: this build has no CUDA backend (built backends: cpu); "
            "rebuild with nvcc on PATH or with -C cmake.define.PAGEDLLM_CUDA=ON";
#endif
    }
  } else {
    err = "unknown device '" + device + "': use 'cpu', 'cuda' or 'cuda:N'";
  }
  if (error != nullptr) *error = err;
  return nullptr;
}

std::unique_ptr<Backend> create_backend(const std::string& device, int num_threads, std::string* error) {
  BackendOptions options;
  options.num_threads = num_threads;
  return create_backend(device, options, error);
}

}  // namespace pagedllm
