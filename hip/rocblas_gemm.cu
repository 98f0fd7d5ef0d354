// GpuGemm on rocBLAS (AMD-only: the twin of cuda/cublas_gemm.cu, same interface gemm.cuh).
// Row-major out[M, N] = x[M, K] @ W[N, K]^T is, read column-major, out^T[N, M] =
// op_T(W as [K, N]) @ x^T: one rocblas_gemm_ex with trans_a = T on the weight, trans_b = N on the
// activations, leading dimensions = row strides, C = D = out (in place, beta = 1 with a bias).
// rocBLAS owns no memory here: the handle uses a preallocated workspace (rocblas_set_workspace),
// so linear() never allocates and can be captured in a HIP graph.
#include "gemm.cuh"
#include "kernels/broadcast_bias.cuh"
#include "rocblas_library.cuh"

namespace pagedllm {
namespace {

// rocBLAS allocates at most this much for the GEMMs of our shapes (its Tensile kernels need none
// or a few MiB for split-K style solutions); a larger need fails loudly with memory_error.
constexpr size_t kWorkspaceBytes = size_t{64} << 20;

// float32, bfloat16 or float16 (check_linear has refused the rest).
rocblas_datatype rocblas_type(DType d) {
  if (d == DType::kBFloat16) return rocblas_datatype_bf16_r;
  return d == DType::kFloat16 ? rocblas_datatype_f16_r : rocblas_datatype_f32_r;
}

}  // namespace

// The loaded library, a handle bound to the backend's stream, and the workspace it computes in.
struct GpuGemm::Impl {
  gpuStream_t stream = nullptr;
  const RocblasLibrary* lib = nullptr;
  void* workspace = nullptr;  // [kWorkspaceBytes] bytes, owned here
  rocblas_handle handle = nullptr;

  ~Impl() {
    if (handle != nullptr) lib->destroy_handle(handle);
    if (workspace != nullptr) gpuFree(workspace);
  }
  std::string describe(rocblas_status status) const { return lib->status_string(status); }
};

std::unique_ptr<GpuGemm> GpuGemm::create(gpuStream_t stream, std::string* error) {
  auto impl = std::make_unique<Impl>();
  impl->lib = load_rocblas(error);
  if (impl->lib == nullptr) return nullptr;
  std::string problem;
  rocblas_status status = impl->lib->create_handle(&impl->handle);
  if (status != rocblas_status_success) {
    impl->handle = nullptr;
    problem = "rocblas_create_handle failed: " + impl->describe(status);
  } else if (gpuMalloc(&impl->workspace, kWorkspaceBytes) != gpuSuccess) {
    impl->workspace = nullptr;
    problem = std::string("cannot allocate the rocBLAS workspace: ") + gpuGetErrorString(gpuGetLastError());
  } else {
    impl->stream = stream;
    status = impl->lib->set_stream(impl->handle, stream);
    if (status == rocblas_status_success) status = impl->lib->set_workspace(impl->handle, impl->workspace, kWorkspaceBytes);
    if (status != rocblas_status_success) problem = "rocBLAS set-up failed: " + impl->describe(status);
  }
  if (!problem.empty()) {
    if (error != nullptr) *error = problem;
    return nullptr;
  }
  return std::unique_ptr<GpuGemm>(new GpuGemm(std::move(impl)));
}

GpuGemm::GpuGemm(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuGemm::~GpuGemm() = default;

size_t GpuGemm::workspace_bytes() const { return kWorkspaceBytes; }
const std::string& GpuGemm::library_path() const { return impl_->lib->path; }

void GpuGemm::linear(const LinearParams& p) {
  const GemmShape s = check_linear(p);
  if (s.m == 0 || s.n == 0) return;
  const bool has_bias = p.bias.data != nullptr;
  if (has_bias) launch_broadcast_bias({p.bias, p.out}, impl_->stream);
  const float alpha = 1.0f, beta = has_bias ? 1.0f : 0.0f;
  const rocblas_datatype in_type = rocblas_type(p.x.dtype), out_type = rocblas_type(p.out.dtype);
  const auto n = static_cast<rocblas_int>(s.n), m = static_cast<rocblas_int>(s.m), k = static_cast<rocblas_int>(s.k);
  const auto ldw = static_cast<rocblas_int>(s.ldw), ldx = static_cast<rocblas_int>(s.ldx);
  const auto ldo = static_cast<rocblas_int>(s.ldo);
  const rocblas_status status = impl_->lib->gemm_ex(
      impl_->handle, rocblas_operation_transpose, rocblas_operation_none, n, m, k, &alpha, p.weight.data, in_type,
      ldw, p.x.data, in_type, ldx, &beta, p.out.data, out_type, ldo, p.out.data, out_type, ldo,
      rocblas_datatype_f32_r, rocblas_gemm_algo_standard, 0, rocblas_gemm_flags_none);
  PAGEDLLM_CHECK(status == rocblas_status_success, "rocblas_gemm_ex [" << s.m << " x " << s.k << "] @ [" << s.n
                                                       << " x " << s.k << "]^T failed: " << impl_->describe(status));
}

}  // namespace pagedllm
