#!/bin/bash
# Runs the sampling kernel (cuda/kernels/sampling.cu) on the CPU with the attention emulation's
# stand-in for the GPU (gpu_compat.cuh here: threads are std::threads, __syncthreads a barrier,
# shuffles through memory), plus the few built-ins only sampling uses, and compares every row's
# token, logprob and rank with the host Sampler. Checks the kernel's logic (reductions, barriers,
# key searches, tie handling) where no GPU exists; says nothing about speed or the memory model.
# Usage: tests/cpp/gpu/emulation/run_sampling_emulation.sh [work dir]   (g++ with C++20, ~3 min on 2 cores)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work/kernels"
for f in sampling.cuh sampling_block.cuh sampling.cu; do
  sed -E 's/^(\s*)(.*)<<<(.*)>>>\((.*)\);/\1::emu::launch(\3, [\&] { \2(\4); });/' "$root/cuda/kernels/$f" > "$work/kernels/$f"
done
cat > "$work/gpu_compat.cuh" <<EOS
#pragma once
#include "$here/gpu_compat.cuh"
#include <atomic>
inline std::atomic<int> emu_block_count{0};
inline int __syncthreads_count(int predicate) {
  __syncthreads();
  if (threadIdx.x == 0) emu_block_count = 0;
  __syncthreads();
  if (predicate) emu_block_count.fetch_add(1);
  __syncthreads();
  const int count = emu_block_count.load();
  __syncthreads();
  return count;
}
inline uint32_t __float_as_uint(float x) { uint32_t b; std::memcpy(&b, &x, 4); return b; }
inline float __uint_as_float(uint32_t b) { float x; std::memcpy(&x, &b, 4); return x; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fsub_rn(float a, float b) { return a - b; }
EOS
g++ -std=c++20 -O1 -pthread -ffp-contract=off -I"$work" -I"$root/cpp/src" -I"$root/cpp/include" -x c++ \
  "$here/sampling_emulation.cc" "$work/kernels/sampling.cu" "$root/cpp/src/sample/sampler.cc" \
  "$root/cpp/src/sample/device_sampling.cc" "$root/cpp/src/backend/tensor.cc" "$root/cpp/src/util/check.cc" \
  -o "$work/sampling_emulation"
"$work/sampling_emulation"
