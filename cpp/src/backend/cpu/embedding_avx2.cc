// Row gathers, AVX2: embedding (table rows by token id, bfloat16 tables widened to float32)
// and gather_rows (activation rows by index). Indices were range-checked by the backend.
#include <algorithm>
#include <cstring>
#include <functional>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"
#include "util/thread_pool.h"

namespace pagedllm {
namespace cpu {

void embedding_avx2(const EmbeddingParams& p, const KernelContext& ctx) {
  int64_t h = p.table.shape[1];
  bool bf16 = p.table.dtype == DType::kBFloat16;
  const int32_t* ids = p.token_ids.ptr<int32_t>();
  auto body = [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) {
      float* out = p.out.ptr<float>() + t * p.out.stride[0];
      int64_t row = static_cast<int64_t>(ids[t]) * p.table.stride[0];
      if (bf16) {
        vconvert(p.table.ptr<uint16_t>() + row, out, h);
      } else {
        std::memcpy(out, p.table.ptr<float>() + row, static_cast<size_t>(h) * sizeof(float));
      }
    }
  };
  ctx.pool->parallel_for(p.token_ids.shape[0], rows_per_task(h), std::cref(body));
}

void gather_rows_avx2(const GatherRowsParams& p, const KernelContext& ctx) {
  int64_t h = p.x.shape[1];
  int64_t elem = static_cast<int64_t>(dtype_size(p.x.dtype));
  const int32_t* idx = p.indices.ptr<int32_t>();
  auto body = [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const char* src = static_cast<const char*>(p.x.data) + idx[r] * p.x.stride[0] * elem;
      char* dst = static_cast<char*>(p.out.data) + r * p.out.stride[0] * elem;
      std::memcpy(dst, src, static_cast<size_t>(h * elem));
    }
  };
  ctx.pool->parallel_for(p.indices.shape[0], rows_per_task(h), std::cref(body));
}

}  // namespace cpu
}  // namespace pagedllm
