// FlashInfer batch decode + batch prefill kernels for bf16, head_dim 64 (see flashinfer_kernels_impl.cuh).
#include "flashinfer/flashinfer_kernels_impl.cuh"

PAGEDLLM_FLASHINFER_KERNELS(flashinfer_kernels_bf16_hd64, ::pagedllm::gpu_bfloat16, 64)
