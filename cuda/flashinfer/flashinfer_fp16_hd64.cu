// FlashInfer batch decode + batch prefill kernels for fp16, head_dim 64 (see flashinfer_kernels_impl.cuh).
#include "flashinfer/flashinfer_kernels_impl.cuh"

PAGEDLLM_FLASHINFER_KERNELS(flashinfer_kernels_fp16_hd64, ::pagedllm::gpu_half, 64)
