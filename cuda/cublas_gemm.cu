// GpuGemm on cuBLAS (CUDA-only; hip/ has the hipBLAS twin). Row-major out[M, N] = x[M, K] @ W[N, K]^T
// is the column-major out^T[N, M] = W^T(as [K, N] col-major, transposed) @ x^T: one cublasGemmEx
// with op(A) = T on the weight and op(B) = N on the activations, leading dimensions = row strides.
#include <cublas_v2.h>

#include "cublas_library.cuh"
#include "gemm.cuh"
#include "kernels/broadcast_bias.cuh"

namespace pagedllm {
namespace {

// cuBLAS's recommended workspace for Hopper (it needs 4 MiB on earlier GPUs).
constexpr size_t kWorkspaceBytes = size_t{32} << 20;

cudaDataType cuda_type(DType d) {
  switch (d) {
    case DType::kFloat32: return CUDA_R_32F;
    case DType::kBFloat16: return CUDA_R_16BF;
    case DType::kFloat16: return CUDA_R_16F;
    default: PAGEDLLM_CHECK(false, "no cuBLAS type for " << dtype_name(d));
  }
  return CUDA_R_32F;
}

}  // namespace

struct GpuGemm::Impl {
  const CublasLibrary* lib = nullptr;
  cublasHandle_t handle = nullptr;
  void* workspace = nullptr;  // [kWorkspaceBytes] bytes
  gpuStream_t stream = nullptr;

  ~Impl() {
    if (handle != nullptr) lib->destroy(handle);
    if (workspace != nullptr) gpuFree(workspace);
  }
  void check(cublasStatus_t status, const char* what) const {
    PAGEDLLM_CHECK(status == CUBLAS_STATUS_SUCCESS, "cuBLAS " << what << " failed: " << lib->status_string(status));
  }
};

std::unique_ptr<GpuGemm> GpuGemm::create(gpuStream_t stream, std::string* error) {
  auto fail = [&](const std::string& message) {
    if (error != nullptr) *error = message;
    return std::unique_ptr<GpuGemm>();
  };
  auto impl = std::make_unique<Impl>();
  impl->lib = load_cublas(error);
  if (impl->lib == nullptr) return nullptr;
  const CublasLibrary& lib = *impl->lib;
  cublasStatus_t st = lib.create(&impl->handle);
  if (st != CUBLAS_STATUS_SUCCESS) {
    impl->handle = nullptr;
    return fail(std::string("cublasCreate failed: ") + lib.status_string(st));
  }
  gpuError_t err = gpuMalloc(&impl->workspace, kWorkspaceBytes);
  if (err != gpuSuccess) {
    impl->workspace = nullptr;
    gpuGetLastError();
    return fail(std::string("cannot allocate the cuBLAS workspace: ") + gpuGetErrorString(err));
  }
  impl->stream = stream;
  // cublasSetStream resets the workspace, so the workspace is set after it.
  st = lib.set_stream(impl->handle, stream);
  if (st == CUBLAS_STATUS_SUCCESS) st = lib.set_workspace(impl->handle, impl->workspace, kWorkspaceBytes);
  if (st == CUBLAS_STATUS_SUCCESS) {
    st = lib.set_math_mode(impl->handle, static_cast<cublasMath_t>(
                                             CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION));
  }
  if (st != CUBLAS_STATUS_SUCCESS) return fail(std::string("cuBLAS set-up failed: ") + lib.status_string(st));
  return std::unique_ptr<GpuGemm>(new GpuGemm(std::move(impl)));
}

GpuGemm::GpuGemm(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuGemm::~GpuGemm() = default;

size_t GpuGemm::workspace_bytes() const { return kWorkspaceBytes; }
const std::string& GpuGemm::library_path() const { return impl_->lib->path; }

void GpuGemm::linear(const LinearParams& p) {
  const GemmShape s = check_linear(p);
  if (s.m == 0 || s.n == 0) return;
  float beta = 0.0f;
  if (p.bias.data != nullptr) {
    launch_broadcast_bias({p.bias, p.out}, impl_->stream);
    beta = 1.0f;
  }
  const float alpha = 1.0f;
  impl_->check(impl_->lib->gemm_ex(impl_->handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(s.n),
                                   static_cast<int>(s.m), static_cast<int>(s.k), &alpha, p.weight.data,
                                   cuda_type(p.weight.dtype), static_cast<int>(s.ldw), p.x.data,
                                   cuda_type(p.x.dtype), static_cast<int>(s.ldx), &beta, p.out.data,
                                   cuda_type(p.out.dtype), static_cast<int>(s.ldo), CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
}

}  // namespace pagedllm
