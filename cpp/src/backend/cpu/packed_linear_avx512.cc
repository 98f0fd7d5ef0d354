// linear on packed weights for the avx512 tier: the width-generic kernels of packed_linear_impl.h.
#include "backend/cpu/packed_linear_impl.h"

namespace pagedllm {
namespace cpu {

void packed_linear_avx512(const LinearParams& p, const KernelContext& ctx) {
  packed_linear_generic(p, ctx);
}

}  // namespace cpu
}  // namespace pagedllm
