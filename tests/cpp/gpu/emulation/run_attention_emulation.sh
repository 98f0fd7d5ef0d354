#!/bin/bash
# Runs the native paged-attention kernels on the CPU: every CUDA thread is a std::thread, blocks
# run one after another, __syncthreads is a barrier and warp shuffles exchange through memory
# (gpu_compat.cuh here stands in for cuda/platform/gpu_compat.cuh). It checks the kernels' logic
# (indexing, masking, online softmax, split-K merge, barriers, shuffle patterns) against a double
# reference where no GPU exists; it says nothing about performance or the memory model.
# Usage: tests/cpp/gpu/emulation/run_attention_emulation.sh [work dir]   (g++ with C++20, ~1 min)
# EMU_WARP_SIZE=64 emulates the 64-lane wavefront of the HIP build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work/kernels"
# Kernel launches `k<<<grid, threads, smem, stream>>>(args);` become emu::launch calls.
for f in dtype.cuh paged_attention.cuh paged_attention_common.cuh paged_attention.cu paged_attention_decode.cu \
         paged_attention_prefill.cu; do
  sed -E 's/^(\s*)(.*)<<<(.*)>>>\((.*)\);/\1::emu::launch(\3, [\&] { \2(\4); });/' "$root/cuda/kernels/$f" > "$work/kernels/$f"
done
g++ -std=c++20 -O1 -pthread -DPAGEDLLM_WARP_SIZE=${EMU_WARP_SIZE:-32} -I"$here" -I"$work" -I"$root/cpp/src" -x c++ "$here/attention_emulation.cc" \
  "$work/kernels/paged_attention.cu" "$work/kernels/paged_attention_decode.cu" "$work/kernels/paged_attention_prefill.cu" \
  "$root/cpp/src/backend/tensor.cc" "$root/cpp/src/util/check.cc" -o "$work/attention_emulation"
"$work/attention_emulation"
