// FlashInfer batch decode + batch prefill kernels for bf16, head_dim 128 (see flashinfer_kernels_impl.cuh).
#include "flashinfer/flashinfer_kernels_impl.cuh"

PAGEDLLM_FLASHINFER_KERNELS(flashinfer_kernels_bf16_hd128, ::pagedllm::gpu_bfloat16, 128)
