# The GPU sources, paths relative to cuda/. Read by cuda/CMakeLists.txt (nvcc) and
# hip/CMakeLists.txt (hipcc): add a new source here, in exactly one of the two lists.
#   PAGEDLLM_GPU_SOURCES: written once against gpu_compat.cuh, built for CUDA and for HIP.
#   PAGEDLLM_CUDA_ONLY_SOURCES: built for CUDA only; each entry says why, and the HIP build has a
#     twin with the same interface in hip/ or falls back to a shared source for it.
set(PAGEDLLM_GPU_SOURCES
  gpu_backend.cu
  gpu_backend_ops.cu
  kernels/broadcast_bias.cu
  kernels/silu_and_mul.cu
  kernels/sampling.cu
  kernels/embedding.cu
  kernels/rms_norm.cu
  kernels/head_rms_norm.cu
  kernels/rotary_embedding.cu
  kernels/write_kv_cache.cu
  kernels/gather_rows.cu
  kernels/copy_blocks.cu
  kernels/convert.cu
  kernels/paged_attention.cu
  kernels/paged_attention_decode.cu
  kernels/paged_attention_prefill.cu
  attention_dispatch.cu
  gpu_graphs.cu
)
set(PAGEDLLM_CUDA_ONLY_SOURCES
  cublas_library.cu   # dlopen of cuBLAS (hip/ loads rocBLAS)
  cublas_gemm.cu      # GpuGemm on cuBLAS (hip/ has the rocBLAS twin of gemm.cuh)
)
# Folders of CUDA-only sources built by their own glue, each with its reason.
set(PAGEDLLM_CUDA_ONLY_DIRS
  flashinfer  # FlashInfer glue (third_party/pagedllm_flashinfer.cmake): FlashInfer is CUDA-only; HIP runs the native attention
)
