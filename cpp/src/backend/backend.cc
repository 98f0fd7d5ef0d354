// Buffer ownership and backend creation. Invariant: a Buffer with data != nullptr holds the
// backend that allocated it and frees through it exactly once.
#include "backend/backend.h"

#include "backend/cpu/cpu_backend.h"

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
  PAGEDLLM_CHECK(data != nullptr,
                 "backend " << name() << ": out of memory allocating " << nbytes << " bytes");
  return Buffer(this, data, nbytes);
}

std::unique_ptr<Backend> create_backend(const std::string& device, int num_threads,
                                        std::string* error) {
  std::string err;
  if (device == "cpu") {
    std::unique_ptr<CpuBackend> cpu = CpuBackend::create(num_threads, &err);
    if (cpu != nullptr) return cpu;
  } else {
    err = "device '" + device + "' is not available in this build (built backends: cpu)";
  }
  if (error != nullptr) *error = err;
  return nullptr;
}

}  // namespace pagedllm
