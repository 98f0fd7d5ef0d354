// GpuGemm: the GPU backend's dense GEMM, out = x @ weight^T (+ bias) (Backend::linear), through
// the platform's BLAS library: cuBLAS on CUDA (cublas_gemm.cu), hipBLAS on HIP (hip/). The
// library is loaded at run time, so the module imports where it is missing; create() fails.
//
// Numerics: bfloat16 and float16 inputs multiply with float32 accumulation; float32 inputs in true
// float32 (no TF32, no reduced-precision split-K reduction). The result is rounded once to the
// out tensor's dtype (float32 logits from bfloat16 hidden states are allowed). A bias is added
// inside the GEMM (out is first filled with the broadcast bias, then beta = 1), as torch's addmm.
// Invariant: the handle and its workspace are created once; linear() never allocates or
// synchronizes, so it can be captured in a CUDA/HIP graph.
#pragma once

#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "backend/ops.h"
#include "gpu_compat.cuh"

namespace pagedllm {

// The GEMM of one LinearParams, checked (PAGEDLLM_CHECK: a bad shape is a caller bug).
struct GemmShape {
  int64_t m = 0, n = 0, k = 0;        // out [m, n] = x [m, k] @ weight[n, k]^T
  int64_t ldx = 0, ldw = 0, ldo = 0;  // row strides in elements
};

inline GemmShape check_linear(const LinearParams& p) {
  const Tensor &x = p.x, &w = p.weight, &out = p.out;
  PAGEDLLM_CHECK(x.ndim == 2 && w.ndim == 2 && out.ndim == 2, "linear: x, weight and out must be 2-d");
  PAGEDLLM_CHECK(w.data != nullptr && ((x.data != nullptr && out.data != nullptr) || x.shape[0] == 0),
                 "linear: empty tensor");
  PAGEDLLM_CHECK(x.dtype == w.dtype, "linear: x is " << dtype_name(x.dtype) << " but weight is "
                                                     << dtype_name(w.dtype));
  PAGEDLLM_CHECK(x.dtype == DType::kFloat32 || x.dtype == DType::kBFloat16 || x.dtype == DType::kFloat16,
                 "linear: no GPU GEMM for " << dtype_name(x.dtype));
  PAGEDLLM_CHECK(out.dtype == x.dtype || out.dtype == DType::kFloat32,
                 "linear: out must be " << dtype_name(x.dtype) << " or float32, got " << dtype_name(out.dtype));
  GemmShape s;
  s.m = x.shape[0];
  s.k = x.shape[1];
  s.n = w.shape[0];
  PAGEDLLM_CHECK(w.shape[1] == s.k, "linear: weight is [" << s.n << ", " << w.shape[1] << "] but x has K = " << s.k);
  PAGEDLLM_CHECK(out.shape[0] == s.m && out.shape[1] == s.n,
                 "linear: out is [" << out.shape[0] << ", " << out.shape[1] << "], expected [" << s.m << ", " << s.n << "]");
  PAGEDLLM_CHECK((s.k <= 1 || x.stride[1] == 1) && (s.k <= 1 || w.stride[1] == 1) && (s.n <= 1 || out.stride[1] == 1),
                 "linear: x, weight and out need unit column strides");
  const int64_t min_ldx = s.k > 1 ? s.k : 1, min_ldo = s.n > 1 ? s.n : 1;
  s.ldx = s.m > 1 && x.stride[0] > min_ldx ? x.stride[0] : min_ldx;
  s.ldw = s.n > 1 && w.stride[0] > min_ldx ? w.stride[0] : min_ldx;
  s.ldo = s.m > 1 && out.stride[0] > min_ldo ? out.stride[0] : min_ldo;
  PAGEDLLM_CHECK(s.m <= 1 || (x.stride[0] >= s.k && out.stride[0] >= s.n), "linear: rows overlap");
  PAGEDLLM_CHECK(s.n <= 1 || w.stride[0] >= s.k, "linear: weight rows overlap");
  PAGEDLLM_CHECK(s.m <= INT_MAX && s.n <= INT_MAX && s.k <= INT_MAX && s.ldx <= INT_MAX && s.ldw <= INT_MAX &&
                     s.ldo <= INT_MAX,
                 "linear: a dimension exceeds the BLAS int range");
  if (p.bias.data != nullptr) {
    PAGEDLLM_CHECK(p.bias.ndim == 1 && p.bias.shape[0] == s.n && (s.n <= 1 || p.bias.stride[0] == 1),
                   "linear: bias must be a contiguous [N]");
  }
  return s;
}

class GpuGemm {
 public:
  // Loads the BLAS library, creates a handle bound to `stream` on the current device and a
  // preallocated workspace. Returns nullptr with *error (naming the library and where it was
  // looked for) when the library is missing or the handle cannot be created.
  static std::unique_ptr<GpuGemm> create(gpuStream_t stream, std::string* error);
  ~GpuGemm();
  GpuGemm(const GpuGemm&) = delete;
  GpuGemm& operator=(const GpuGemm&) = delete;

  // out = x @ weight^T (+ bias), enqueued on the stream. Preconditions: check_linear(p).
  void linear(const LinearParams& p);
  // Device memory this object holds (the BLAS workspace).
  size_t workspace_bytes() const;
  // Where the BLAS library was loaded from.
  const std::string& library_path() const;

  struct Impl;

 private:
  explicit GpuGemm(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pagedllm
