// A CPU stand-in for cuda/platform/gpu_compat.cuh and the CUDA built-ins the attention kernels
// use, for run_attention_emulation.sh only: a block's threads are std::threads, __shared__ is a
// function-local static (blocks run one at a time), __syncthreads a std::barrier, shuffles go
// through a per-warp buffer between two warp barriers. bfloat16 is emulated; float16 is not.
#pragma once
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>
#include <cstdlib>
#include "util/check.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define PAGEDLLM_GPU_PLATFORM_NAME "emu"
#ifndef PAGEDLLM_WARP_SIZE
#define PAGEDLLM_WARP_SIZE 32  // -DPAGEDLLM_WARP_SIZE=64 emulates a HIP wavefront
#endif

struct dim3 { unsigned x = 1, y = 1, z = 1; dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {} };
struct uint2 { unsigned x, y; };
struct uint4 { unsigned x, y, z, w; };
struct float4 { float x, y, z, w; };
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline float __expf(float x) { return std::exp(x); }

namespace emu {
struct Warp { std::barrier<> bar{PAGEDLLM_WARP_SIZE}; uint64_t buf[PAGEDLLM_WARP_SIZE]; };
struct Block { std::barrier<> bar; std::vector<std::unique_ptr<Warp>> warps; explicit Block(int n) : bar(n) {} };
inline thread_local Block* tl_block = nullptr;
inline thread_local dim3 tl_tid, tl_bid;
template <typename F>
void launch(dim3 grid, int threads, int, void*, F f) {
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        Block blk(threads);
        for (int w = 0; w < threads / PAGEDLLM_WARP_SIZE; ++w) blk.warps.push_back(std::make_unique<Warp>());
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; ++t)
          ts.emplace_back([&, t] {
            tl_block = &blk; tl_tid = dim3(t, 0, 0); tl_bid = dim3(x, y, z);
            f();
            blk.warps[t / PAGEDLLM_WARP_SIZE]->bar.arrive_and_drop();
            blk.bar.arrive_and_drop();
          });
        for (auto& th : ts) th.join();
      }
}
}  // namespace emu
#define threadIdx (::emu::tl_tid)
#define blockIdx (::emu::tl_bid)
inline void __syncthreads() { ::emu::tl_block->bar.arrive_and_wait(); }

namespace pagedllm {
struct gpu_bfloat16 { uint16_t bits; };
struct gpu_half { uint16_t bits; };
inline float gpu_bfloat16_to_float(gpu_bfloat16 v) { uint32_t u = uint32_t(v.bits) << 16; float f; std::memcpy(&f, &u, 4); return f; }
inline gpu_bfloat16 gpu_float_to_bfloat16(float f) { uint32_t u; std::memcpy(&u, &f, 4); u += 0x7fff + ((u >> 16) & 1); return {uint16_t(u >> 16)}; }
inline float gpu_half_to_float(gpu_half) { std::abort(); }
inline gpu_half gpu_float_to_half(float) { std::abort(); }
using gpuError_t = int;
using gpuStream_t = void*;
constexpr gpuError_t gpuSuccess = 0;
inline gpuError_t gpuGetLastError() { return 0; }
inline const char* gpuGetErrorString(gpuError_t) { return "emu"; }
inline gpuError_t gpuMalloc(void** p, size_t n) { *p = std::calloc(n, 1); return 0; }
inline gpuError_t gpuFree(void* p) { std::free(p); return 0; }
inline bool gpu_stream_is_capturing(gpuStream_t) { return false; }
template <typename T>
T gpu_shfl_xor(T v, int mask) {
  const int t = threadIdx.x, lane = t % PAGEDLLM_WARP_SIZE;
  auto& w = *::emu::tl_block->warps[t / PAGEDLLM_WARP_SIZE];
  uint64_t raw = 0; std::memcpy(&raw, &v, sizeof(T));
  w.buf[lane] = raw;
  w.bar.arrive_and_wait();
  uint64_t got = w.buf[lane ^ mask];
  w.bar.arrive_and_wait();
  T r; std::memcpy(&r, &got, sizeof(T)); return r;
}
}  // namespace pagedllm
#define PAGEDLLM_GPU_CHECK(call) do { (void)(call); } while (0)
