// FlashInfer batch decode + batch prefill kernels for fp16, head_dim 128 (see flashinfer_kernels_impl.cuh).
#include "flashinfer/flashinfer_kernels_impl.cuh"

PAGEDLLM_FLASHINFER_KERNELS(flashinfer_kernels_fp16_hd128, ::pagedllm::gpu_half, 128)
