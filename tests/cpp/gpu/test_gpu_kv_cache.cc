// write_kv_cache and copy_blocks on the GPU: every activation x cache dtype pair, strided K/V
// views, negative and out-of-range slots, several layers and pairs, and a cache of more than
// 2^31 elements (int64 offsets; skipped when the device lacks the memory).
#include <cstring>

#include "gpu_test.h"
#include "host_reference.h"
#include "kernels/copy_blocks.cuh"
#include "kernels/write_kv_cache.cuh"

namespace {

using pagedllm::DType;
using namespace pagedllm_test;

void run_write(DType act, DType cache_dtype, int64_t heads, int64_t d, int64_t block_size, int64_t num_blocks,
               const std::vector<double>& slots, uint64_t seed) {
  Rng rng(seed);
  const auto tokens = static_cast<int64_t>(slots.size());
  const int64_t row = 3 * heads * d + 2;  // K and V as views into a wider per-token row
  TestTensor k(act, {tokens, heads, d}, {row, d, 1});
  TestTensor v(act, {tokens, heads, d}, {row, d, 1});
  k.fill_random(rng, -3, 3);
  v.fill_random(rng, -3, 3);
  TestTensor slot_mapping(DType::kInt64, {tokens});
  slot_mapping.fill(slots);
  TestTensor k_cache(cache_dtype, {num_blocks, heads, block_size, d});
  TestTensor v_cache(cache_dtype, {num_blocks, heads, block_size, d});
  pagedllm::launch_write_kv_cache({k.dev(), v.dev(), slot_mapping.dev(), k_cache.dev(), v_cache.dev()}, gpu_stream());
  sync_device();
  ref::write_kv_cache({k.host(), v.host(), slot_mapping.host(), k_cache.host(), v_cache.host()});
  expect_equal(k_cache.fetch(), k_cache, "k_cache");
  expect_equal(v_cache.fetch(), v_cache, "v_cache");
}

GPU_OP_TEST(write_kv_cache, dtypes_slots_strides) {
  uint64_t seed = 500;
  for (DType act : float_dtypes())
    for (DType cache_dtype : float_dtypes()) {
      run_write(act, cache_dtype, 1, 2, 1, 3, {2, 0}, seed++);
      run_write(act, cache_dtype, 8, 128, 16, 6, {0, 17, 95, 40, 41}, seed++);
      run_write(act, cache_dtype, 2, 64, 16, 4, {-1, 3, -1, 63}, seed++);       // padding slots
      run_write(act, cache_dtype, 3, 10, 5, 3, {14, 64, 1 << 20, 2}, seed++);  // out-of-range slots skipped
      run_write(act, cache_dtype, 4, 256, 8, 2, {15, 7, 8}, seed++);
    }
}

// Raw device memory for the large-cache case.
struct DeviceMemory {
  void* ptr = nullptr;
  explicit DeviceMemory(size_t n) { PAGEDLLM_GPU_CHECK(pagedllm::gpuMalloc(&ptr, n)); }
  ~DeviceMemory() { pagedllm::gpuFree(ptr); }
};

std::vector<uint16_t> fetch_block(const void* base, int64_t block, int64_t block_elems) {
  std::vector<uint16_t> out(static_cast<size_t>(block_elems));
  PAGEDLLM_GPU_CHECK(pagedllm::gpuMemcpy(out.data(), static_cast<const uint16_t*>(base) + block * block_elems,
                                         out.size() * 2, pagedllm::gpuMemcpyDeviceToHost));
  return out;
}

GPU_OP_TEST(write_kv_cache, cache_beyond_2_pow_31_elements) {
  const int64_t heads = 8, block_size = 16, d = 128, block_elems = heads * block_size * d;
  const int64_t num_blocks = (int64_t{1} << 31) / block_elems + 2;
  const size_t bytes = static_cast<size_t>(num_blocks * block_elems) * 2;
  size_t free_bytes = 0, total_bytes = 0;
  PAGEDLLM_GPU_CHECK(pagedllm::gpuMemGetInfo(&free_bytes, &total_bytes));
  if (free_bytes < 2 * bytes + (size_t{1} << 30)) {
    std::cout << "  (skipped: needs " << (2 * bytes >> 20) << " MiB of device memory)\n";
    return;
  }
  DeviceMemory kc(bytes), vc(bytes);
  PAGEDLLM_GPU_CHECK(pagedllm::gpuMemsetAsync(kc.ptr, 0xff, bytes, gpu_stream()));
  PAGEDLLM_GPU_CHECK(pagedllm::gpuMemsetAsync(vc.ptr, 0xff, bytes, gpu_stream()));
  const int64_t last = num_blocks - 1;
  const std::vector<double> slots = {static_cast<double>(last * block_size + block_size - 1), 3,
                                     static_cast<double>(last * block_size + 5)};
  Rng rng(600);
  TestTensor k(DType::kBFloat16, {3, heads, d}), v(DType::kBFloat16, {3, heads, d}), sm(DType::kInt64, {3});
  k.fill_random(rng, -1, 1);
  v.fill_random(rng, -1, 1);
  sm.fill(slots);
  const auto k_cache = pagedllm::Tensor::contiguous(kc.ptr, DType::kBFloat16, {num_blocks, heads, block_size, d});
  const auto v_cache = pagedllm::Tensor::contiguous(vc.ptr, DType::kBFloat16, {num_blocks, heads, block_size, d});
  pagedllm::launch_write_kv_cache({k.dev(), v.dev(), sm.dev(), k_cache, v_cache}, gpu_stream());
  sync_device();
  for (const auto& [base, src] : {std::make_pair(kc.ptr, &k), std::make_pair(vc.ptr, &v)}) {
    std::vector<uint16_t> want_last(static_cast<size_t>(block_elems), 0xffff), want_first = want_last;
    for (int64_t t = 0; t < 3; ++t) {
      const auto slot = static_cast<int64_t>(slots[t]);
      auto& want = slot / block_size == last ? want_last : want_first;
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < d; ++i)
          want[(h * block_size + slot % block_size) * d + i] = float_to_bf16_bits(static_cast<float>(src->at(t, h, i)));
    }
    EXPECT_TRUE(fetch_block(base, last, block_elems) == want_last);
    EXPECT_TRUE(fetch_block(base, 0, block_elems) == want_first);
  }
  // copy_blocks at the far end of the same cache: block `last` -> block 1.
  TestTensor keys(DType::kInt64, {1}), values(DType::kInt64, {1}), mapping(DType::kInt64, {1, 2});
  keys.fill({static_cast<double>(reinterpret_cast<uintptr_t>(kc.ptr))});
  values.fill({static_cast<double>(reinterpret_cast<uintptr_t>(vc.ptr))});
  mapping.fill({static_cast<double>(last), 1});
  pagedllm::launch_copy_blocks({keys.dev(), values.dev(), mapping.dev(), num_blocks, block_elems * 2}, gpu_stream());
  sync_device();
  EXPECT_TRUE(fetch_block(kc.ptr, 1, block_elems) == fetch_block(kc.ptr, last, block_elems));
  EXPECT_TRUE(fetch_block(vc.ptr, 1, block_elems) == fetch_block(vc.ptr, last, block_elems));
}

void run_copy_blocks(DType dtype, int64_t layers, int64_t num_blocks, int64_t heads, int64_t block_size, int64_t d,
                     const std::vector<double>& pairs, uint64_t seed) {
  Rng rng(seed);
  std::vector<TestTensor> caches;  // K of layer l at 2l, V at 2l + 1
  for (int64_t i = 0; i < 2 * layers; ++i) {
    caches.emplace_back(dtype, std::initializer_list<int64_t>{num_blocks, heads, block_size, d});
    caches.back().fill_random(rng, -5, 5);
  }
  TestTensor dev_keys(DType::kInt64, {layers}), dev_values(DType::kInt64, {layers});
  TestTensor host_keys(DType::kInt64, {layers}), host_values(DType::kInt64, {layers});
  std::vector<double> dk, dv, hk, hv;
  for (int64_t l = 0; l < layers; ++l) {
    dk.push_back(static_cast<double>(reinterpret_cast<uintptr_t>(caches[2 * l].dev().data)));
    dv.push_back(static_cast<double>(reinterpret_cast<uintptr_t>(caches[2 * l + 1].dev().data)));
    hk.push_back(static_cast<double>(reinterpret_cast<uintptr_t>(caches[2 * l].host().data)));
    hv.push_back(static_cast<double>(reinterpret_cast<uintptr_t>(caches[2 * l + 1].host().data)));
  }
  dev_keys.fill(dk);
  dev_values.fill(dv);
  host_keys.fill(hk);
  host_values.fill(hv);
  const auto n = static_cast<int64_t>(pairs.size() / 2);
  TestTensor mapping(DType::kInt64, {n, 2});
  mapping.fill(pairs);
  const int64_t block_bytes = heads * block_size * d * static_cast<int64_t>(pagedllm::dtype_size(dtype));
  pagedllm::launch_copy_blocks({dev_keys.dev(), dev_values.dev(), mapping.dev(), num_blocks, block_bytes},
                               gpu_stream());
  sync_device();
  ref::copy_blocks({host_keys.host(), host_values.host(), mapping.host(), num_blocks, block_bytes});
  for (const TestTensor& c : caches) expect_equal(c.fetch(), c, "copy_blocks cache");
}

GPU_OP_TEST(copy_blocks, layers_pairs_dtypes) {
  uint64_t seed = 700;
  for (DType dtype : float_dtypes()) {
    run_copy_blocks(dtype, 1, 4, 1, 1, 2, {0, 3}, seed++);
    run_copy_blocks(dtype, 3, 10, 2, 16, 64, {1, 0, 4, 9, 5, 2}, seed++);
    run_copy_blocks(dtype, 2, 6, 1, 3, 5, {0, 1, 2, 3}, seed++);          // block_bytes not a multiple of 16
    run_copy_blocks(dtype, 2, 5, 2, 4, 8, {0, 7, -1, 2, 3, 4}, seed++);    // bad ids skipped
  }
  run_copy_blocks(DType::kBFloat16, 2, 8, 2, 16, 64, {}, seed++);         // no pairs
}

HOST_TEST(GpuChecks, kv_launchers_reject_bad_shapes) {
  float buf[512] = {};
  int64_t slots[4] = {};
  const pagedllm::Tensor k = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 2, 8});
  const pagedllm::Tensor cache = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 2, 4, 8});
  const pagedllm::Tensor sm = pagedllm::Tensor::contiguous(slots, DType::kInt64, {2});
  const pagedllm::Tensor sm32 = pagedllm::Tensor::contiguous(slots, DType::kInt32, {2});
  const pagedllm::Tensor cache3 = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 3, 4, 8});
  EXPECT_CHECK_FAILS(pagedllm::launch_write_kv_cache({k, k, sm32, cache, cache}, nullptr));
  EXPECT_CHECK_FAILS(pagedllm::launch_write_kv_cache({k, k, sm, cache3, cache3}, nullptr));
  EXPECT_CHECK_FAILS(pagedllm::launch_write_kv_cache({k, k, sm, cache, cache3}, nullptr));
  const pagedllm::Tensor map3 = pagedllm::Tensor::contiguous(slots, DType::kInt64, {1, 3});
  const pagedllm::Tensor layers = pagedllm::Tensor::contiguous(slots, DType::kInt64, {1});
  EXPECT_CHECK_FAILS(pagedllm::launch_copy_blocks({layers, layers, map3, 4, 64}, nullptr));
  const pagedllm::Tensor map = pagedllm::Tensor::contiguous(slots, DType::kInt64, {1, 2});
  EXPECT_CHECK_FAILS(pagedllm::launch_copy_blocks({layers, layers, map, 4, 0}, nullptr));
}

}  // namespace
