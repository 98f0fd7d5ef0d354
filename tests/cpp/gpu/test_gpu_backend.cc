// GpuBackend (cuda/gpu_backend.cuh) through the Backend interface: device strings and their
// errors (also without a GPU), allocation (zero fill, out of memory -> nullptr / OutOfMemoryError,
// the backend usable afterwards), copies (host memory reusable on return, pageable and pinned),
// upload_weight conversions, pack_linear_weight, memory_info and linear through the backend.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "gpu_test.h"

namespace {

using pagedllm::Backend;
using pagedllm::DType;
using pagedllm::Tensor;
using namespace pagedllm_test;

std::unique_ptr<Backend> make_backend(const std::string& device = "cuda") {
  std::string error;
  std::unique_ptr<Backend> b = pagedllm::create_backend(device, 1, &error);
  if (b == nullptr) PAGEDLLM_TEST_FAIL_(true, "create_backend(" + device + "): " + error);
  return b;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

HOST_TEST(GpuBackendCreate, device_strings_and_errors) {
  const std::string platform = PAGEDLLM_GPU_PLATFORM_NAME;  // "cuda", or "hip" in the HIP build
  const std::vector<std::string> backends = pagedllm::built_backends();
  EXPECT_TRUE(backends.size() == 2 && backends[1] == platform);
  std::string error;
  EXPECT_TRUE(pagedllm::create_backend("cuda:x", 1, &error) == nullptr);
  EXPECT_TRUE(contains(error, "malformed device 'cuda:x'"));
  EXPECT_TRUE(pagedllm::create_backend("gpu", 1, &error) == nullptr);
  EXPECT_TRUE(contains(error, "unknown device 'gpu'"));
  EXPECT_TRUE(pagedllm::create_backend("cuda:9999", 1, &error) == nullptr);
  if (device_available()) {
    EXPECT_TRUE(contains(error, "device 'cuda:9999' does not exist: this machine has"));
    pagedllm::BackendOptions options;
    options.attention_backend = "bogus";
    EXPECT_TRUE(pagedllm::create_backend("cuda", options, &error) == nullptr);
    EXPECT_TRUE(contains(error, "unknown attention_backend 'bogus'"));
  } else {
    EXPECT_TRUE(contains(error, "no " + platform + " device is available"));
    EXPECT_TRUE(pagedllm::create_backend("cuda", 1, &error) == nullptr);
    EXPECT_TRUE(contains(error, "no " + platform + " device is available"));
  }
}

GPU_OP_TEST(GpuBackend, names_dtypes_and_memory_info) {
  auto b = make_backend("cuda:0");
  EXPECT_EQ(b->name(), "cuda:0");
  EXPECT_TRUE(b->activation_dtype(DType::kBFloat16) == DType::kBFloat16);
  EXPECT_TRUE(b->activation_dtype(DType::kFloat16) == DType::kFloat16);
  EXPECT_TRUE(b->activation_dtype(DType::kFloat32) == DType::kFloat32);
  EXPECT_TRUE(b->profiles_memory());
  const pagedllm::DeviceMemoryInfo before = b->memory_info();
  EXPECT_GT(before.total_bytes, int64_t{0});
  EXPECT_GT(before.free_bytes, int64_t{0});
  EXPECT_LE(before.free_bytes, before.total_bytes);
  EXPECT_GT(b->default_kv_cache_bytes(), size_t{0});
  {
    pagedllm::Buffer a = b->allocate_buffer(size_t{3} << 20);
    EXPECT_EQ(b->memory_info().allocated_bytes, before.allocated_bytes + (int64_t{3} << 20));
  }
  EXPECT_EQ(b->memory_info().allocated_bytes, before.allocated_bytes);
  EXPECT_GE(b->memory_info().peak_allocated_bytes, before.allocated_bytes + (int64_t{3} << 20));
}

GPU_OP_TEST(GpuBackend, allocation_zero_fill_and_out_of_memory) {
  auto b = make_backend();
  pagedllm::Buffer a = b->allocate_buffer(1000);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % 64, uintptr_t{0});
  std::vector<unsigned char> host(1000, 0xAB);
  b->copy_to_host(host.data(), a.data(), host.size());
  for (unsigned char c : host) ASSERT_EQ(int{c}, 0);
  EXPECT_TRUE(b->allocate(size_t{1} << 52) == nullptr);  // 4 PiB: out of memory, not a crash
  bool threw = false;
  try {
    b->allocate_buffer(size_t{1} << 52);
  } catch (const pagedllm::OutOfMemoryError& e) {
    threw = contains(e.what(), "not enough GPU memory: need");
  }
  EXPECT_TRUE(threw);
  pagedllm::Buffer after = b->allocate_buffer(64);  // the failed allocations left no error behind
  b->synchronize();
}

GPU_OP_TEST(GpuBackend, copies_leave_host_memory_reusable) {
  auto b = make_backend();
  const size_t n = (size_t{70} << 20) + 3;  // three staging chunks: a chunk buffer is reused
  pagedllm::Buffer d = b->allocate_buffer(n);
  std::vector<unsigned char> src(n), back(n);
  for (size_t i = 0; i < n; ++i) src[i] = static_cast<unsigned char>(i * 7 + 1);
  b->copy_to_device(d.data(), src.data(), n);
  std::fill(src.begin(), src.end(), 0);  // allowed right after the call returns
  b->copy_to_host(back.data(), d.data(), n);
  for (size_t i = 0; i < n; i += 4093) ASSERT_EQ(int{back[i]}, int{static_cast<unsigned char>(i * 7 + 1)});
  void* pinned = b->allocate_host(4096);
  ASSERT_TRUE(pinned != nullptr);
  std::memset(pinned, 0x5A, 4096);
  b->copy_to_device(d.data(), pinned, 4096);
  std::memset(pinned, 0, 4096);
  b->copy_to_host(back.data(), d.data(), 4096);
  for (size_t i = 0; i < 4096; ++i) ASSERT_EQ(int{back[i]}, 0x5A);
  std::memset(pinned, 0x33, 4096);
  b->copy_to_device_async(d.data(), pinned, 4096);
  b->synchronize();
  b->copy_to_host(back.data(), d.data(), 4096);
  EXPECT_EQ(int{back[4095]}, 0x33);
  b->deallocate_host(pinned);
}

GPU_OP_TEST(GpuBackend, upload_weight_converts_every_float_pair) {
  auto b = make_backend();
  uint64_t seed = 11;
  for (DType from : float_dtypes())
    for (DType to : float_dtypes()) {
      Rng rng(seed++);
      TestTensor src(from, {13, 7});
      src.fill_random(rng, -60000, 60000);
      pagedllm::Buffer storage;
      Tensor w = b->upload_weight(src.host(), to, &storage);
      EXPECT_TRUE(w.dtype == to && w.ndim == 2 && w.shape[0] == 13 && w.shape[1] == 7);
      ASSERT_TRUE(storage.data() != nullptr && w.data == storage.data());
      TestTensor expected(to, {13, 7});
      for (int64_t i = 0; i < 13 * 7; ++i) expected.set(i, src.get(i));
      std::vector<unsigned char> got(w.nbytes());
      b->copy_to_host(got.data(), w.data, w.nbytes());
      EXPECT_TRUE(std::memcmp(got.data(), expected.host_data(), got.size()) == 0);
    }
}

GPU_OP_TEST(GpuBackend, pack_linear_weight_concatenates_rows) {
  auto b = make_backend();
  Rng rng(5);
  TestTensor q(DType::kBFloat16, {6, 8}), k(DType::kBFloat16, {2, 8}), v(DType::kBFloat16, {2, 8});
  for (TestTensor* t : {&q, &k, &v}) t->fill_random(rng, -1, 1);
  std::vector<pagedllm::Buffer> parts_storage(3);
  std::vector<Tensor> parts = {b->upload_weight(q.host(), DType::kBFloat16, &parts_storage[0]),
                               b->upload_weight(k.host(), DType::kBFloat16, &parts_storage[1]),
                               b->upload_weight(v.host(), DType::kBFloat16, &parts_storage[2])};
  pagedllm::Buffer single;
  EXPECT_TRUE(b->pack_linear_weight({parts[0]}, &single).data == nullptr);
  pagedllm::Buffer storage;
  Tensor packed = b->pack_linear_weight(parts, &storage);
  parts_storage.clear();  // the parts may be freed once packed
  ASSERT_TRUE(packed.data != nullptr && packed.shape[0] == 10 && packed.shape[1] == 8 && packed.is_contiguous());
  TestTensor expected(DType::kBFloat16, {10, 8});
  for (int64_t r = 0; r < 10; ++r)
    for (int64_t c = 0; c < 8; ++c)
      expected.set(expected.offset(r, c), r < 6 ? q.at(r, c) : r < 8 ? k.at(r - 6, c) : v.at(r - 8, c));
  std::vector<unsigned char> got(packed.nbytes());
  b->copy_to_host(got.data(), packed.data, packed.nbytes());
  EXPECT_TRUE(std::memcmp(got.data(), expected.host_data(), got.size()) == 0);
}

GPU_OP_TEST(linear, through_the_backend_with_bias) {
  auto b = make_backend();
  Rng rng(9);
  TestTensor x(DType::kFloat32, {3, 5}), w(DType::kFloat32, {4, 5}), bias(DType::kFloat32, {4});
  x.fill_random(rng, -1, 1);
  w.fill_random(rng, -1, 1);
  bias.fill_random(rng, -1, 1);
  TestTensor out(DType::kFloat32, {3, 4});
  b->linear({x.dev(), w.dev(), bias.dev(), out.dev()});
  b->synchronize();
  TestTensor expected(out);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j) {
      double s = bias.at(j);
      for (int64_t l = 0; l < 5; ++l) s += x.at(i, l) * w.at(j, l);
      expected.set(expected.offset(i, j), s);
    }
  expect_close(out.fetch(), expected, Tolerance{1e-6, 1e-6}, "backend linear");
}

}  // namespace
