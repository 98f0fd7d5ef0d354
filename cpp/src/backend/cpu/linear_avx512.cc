// linear for the avx512 tier: the width-generic kernels of linear_impl.h.
#include "backend/cpu/linear_impl.h"

namespace pagedllm {
namespace cpu {

void linear_avx512(const LinearParams& p, const KernelContext& ctx) { linear_generic(p, ctx); }

}  // namespace cpu
}  // namespace pagedllm
