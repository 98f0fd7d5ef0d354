// GpuGemm for HIP builds made without rocBLAS headers (e.g. Debian 12, whose ROCm 5.2 packages
// have no rocBLAS): everything else of the HIP backend compiles and links, and creating the
// backend fails with this reason. hip/CMakeLists.txt picks it only when rocblas.h is missing.
#include "gemm.cuh"

namespace pagedllm {

struct GpuGemm::Impl {};

std::unique_ptr<GpuGemm> GpuGemm::create(gpuStream_t, std::string* error) {
  if (error != nullptr) {
    *error = "this HIP build has no GEMM: rocBLAS headers (rocblas/rocblas.h) were not found when it was built; "
             "install ROCm's rocblas development package and rebuild";
  }
  return nullptr;
}

GpuGemm::GpuGemm(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuGemm::~GpuGemm() = default;

size_t GpuGemm::workspace_bytes() const { return 0; }
const std::string& GpuGemm::library_path() const {
  static const std::string none;
  return none;
}
void GpuGemm::linear(const LinearParams&) { PAGEDLLM_CHECK(false, "GpuGemm::linear in a HIP build without rocBLAS"); }

}  // namespace pagedllm
