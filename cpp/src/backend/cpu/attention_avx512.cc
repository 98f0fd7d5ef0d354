// paged_attention for the avx512 tier: the width-generic kernel of attention_impl.h.
#include "backend/cpu/attention_impl.h"

namespace pagedllm {
namespace cpu {

void paged_attention_avx512(const PagedAttentionParams& p, const AttentionPlan& plan,
                          const KernelContext& ctx) {
  if (p.k_cache.dtype == DType::kBFloat16) {
    paged_attention_impl<uint16_t>(p, plan, ctx);
  } else {
    paged_attention_impl<float>(p, plan, ctx);
  }
}

}  // namespace cpu
}  // namespace pagedllm
