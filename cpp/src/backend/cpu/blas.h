// The BLAS the CPU backend links (OpenBLAS). scipy-openblas32 prefixes its symbols
// (scipy_cblas_sgemm); PAGEDLLM_BLAS_SCIPY_PREFIX selects those names. Use blas::sgemm and
// blas::set_num_threads, never the raw names.
#pragma once

#include <cblas.h>

namespace pagedllm {
namespace blas {

#if defined(PAGEDLLM_BLAS_SCIPY_PREFIX) && PAGEDLLM_BLAS_SCIPY_PREFIX
inline constexpr auto& sgemm = scipy_cblas_sgemm;
inline constexpr auto& set_num_threads = scipy_openblas_set_num_threads;
#else
inline constexpr auto& sgemm = cblas_sgemm;
inline constexpr auto& set_num_threads = openblas_set_num_threads;
#endif

}  // namespace blas
}  // namespace pagedllm
