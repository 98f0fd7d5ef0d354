// KV-cache sizing (engine/kv_cache_sizing.h): the arithmetic of each way, the profiling
// measurement against a fake device whose memory the test controls, and AllocationStats.
#include <cstdint>
#include <string>

#include "backend/allocation_stats.h"
#include "backend/backend.h"
#include "engine/kv_cache_sizing.h"
#include "no_op_backend.h"
#include "test_harness.h"

using namespace pagedllm;

namespace {

constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int64_t kMiB = int64_t{1} << 20;

// A device of total_bytes whose free memory is total - context - live allocations. Its
// memory is bookkeeping only: allocations are fake addresses, ops are never called.
class FakeMemoryBackend : public NoOpModelBackend {
 public:
  FakeMemoryBackend(int64_t total, int64_t context) : total_(total), context_(context) {}
  std::string name() const override { return "fake"; }
  DType activation_dtype(DType w) const override { return w; }
  size_t default_kv_cache_bytes() const override { return 0; }
  void* allocate(size_t nbytes) override {
    if (static_cast<int64_t>(nbytes) > free_bytes()) return nullptr;
    void* p = reinterpret_cast<void*>(next_address_ += 4096);  // never dereferenced
    stats_.on_allocate(p, nbytes);
    return p;
  }
  void deallocate(void* data) override {
    stats_.on_deallocate(data);
  }
  void copy_to_device(void*, const void*, size_t) override {}
  void copy_to_host(void*, const void*, size_t) override {}
  void synchronize() override {}
  bool profiles_memory() const override { return true; }
  DeviceMemoryInfo memory_info() override {
    DeviceMemoryInfo m;
    m.total_bytes = total_;
    m.free_bytes = free_bytes();
    m.allocated_bytes = stats_.allocated_bytes();
    m.peak_allocated_bytes = stats_.peak_bytes();
    return m;
  }
  void reset_peak_memory() override { stats_.reset_peak(); }
  Tensor upload_weight(const Tensor&, DType, Buffer*) override { return Tensor(); }

 private:
  int64_t free_bytes() const { return total_ - context_ - stats_.allocated_bytes(); }
  int64_t total_, context_;
  uintptr_t next_address_ = 0;
  AllocationStats stats_;
};

KvCacheSizingInputs llama8b_like() {
  KvCacheSizingInputs in;
  in.block_size = 16;
  in.block_bytes = 2 * 32 * 8 * 16 * 128 * 2;  // K and V, 32 layers, 8 KV heads, D 128, bf16
  in.max_model_len = 8192;
  in.max_num_seqs = 256;
  in.gpu_memory_utilization = 0.9;
  return in;
}

}  // namespace

TEST(KvCacheSizing, ExplicitBlocksWin) {
  KvCacheSizingInputs in = llama8b_like();
  in.num_kv_blocks = 7;
  in.kv_cache_memory_bytes = 100 * kGiB;
  EXPECT_FALSE(kv_cache_needs_profile(in, true));
  Result<KvCacheSizing> r = size_kv_cache(in, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().num_blocks, 7);
  EXPECT_FALSE(r.value().from_profile);
}

TEST(KvCacheSizing, ExplicitBytes) {
  KvCacheSizingInputs in = llama8b_like();
  in.kv_cache_memory_bytes = 10 * in.block_bytes + 5;
  EXPECT_FALSE(kv_cache_needs_profile(in, true));
  Result<KvCacheSizing> r = size_kv_cache(in, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().num_blocks, 10);
  in.kv_cache_memory_bytes = in.block_bytes - 1;
  r = size_kv_cache(in, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().code() == StatusCode::kResourceExhausted);
}

TEST(KvCacheSizing, CpuDefaultCappedByUse) {
  KvCacheSizingInputs in = llama8b_like();
  in.max_num_seqs = 2;
  in.max_model_len = 100;  // 7 blocks each
  in.default_kv_cache_bytes = 8 * kGiB;
  EXPECT_FALSE(kv_cache_needs_profile(in, false));
  Result<KvCacheSizing> r = size_kv_cache(in, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().num_blocks, 14);
  in.default_kv_cache_bytes = 3 * in.block_bytes;
  r = size_kv_cache(in, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().num_blocks, 3);
}

TEST(KvCacheSizing, ProfileArithmetic) {
  KvCacheSizingInputs in = llama8b_like();
  in.reserve_bytes = 256 * kMiB;
  EXPECT_TRUE(kv_cache_needs_profile(in, true));
  ProfiledMemory m;
  m.total_bytes = 140 * kGiB;
  m.free_bytes = 120 * kGiB;          // 20 GiB in use now
  m.allocated_bytes = 18 * kGiB;
  m.peak_allocated_bytes = 19 * kGiB;  // 1 GiB was allocated and released during the step
  EXPECT_EQ(m.peak_used_bytes(), 21 * kGiB);
  Result<KvCacheSizing> r = size_kv_cache(in, &m);
  ASSERT_TRUE(r.ok());
  const int64_t budget = static_cast<int64_t>(0.9 * 140 * kGiB) - 21 * kGiB - 256 * kMiB;
  EXPECT_TRUE(r.value().from_profile);
  EXPECT_EQ(r.value().budget_bytes, budget);
  EXPECT_EQ(r.value().num_blocks, budget / in.block_bytes);
  EXPECT_EQ(r.value().peak_used_bytes, 21 * kGiB);
}

TEST(KvCacheSizing, ProfileTooSmallForOneSequence) {
  KvCacheSizingInputs in = llama8b_like();
  ProfiledMemory m;
  m.total_bytes = 20 * kGiB;
  m.free_bytes = 2 * kGiB;
  m.allocated_bytes = m.peak_allocated_bytes = 17 * kGiB;
  // 0.9 * 20 - 18 = 0 bytes: no room at all.
  Result<KvCacheSizing> r = size_kv_cache(in, &m);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().code() == StatusCode::kResourceExhausted);
  const std::string& msg = r.status().message();
  EXPECT_TRUE(msg.find("not enough GPU memory for the KV cache") != std::string::npos);
  EXPECT_TRUE(msg.find("lower max_model_len or raise gpu_memory_utilization") != std::string::npos);
  // Exactly one max_model_len sequence fits: accepted.
  const int64_t one_seq = blocks_per_max_len_seq(in) * in.block_bytes;
  m.free_bytes = 20 * kGiB - (static_cast<int64_t>(0.9 * 20 * kGiB) - one_seq);
  r = size_kv_cache(in, &m);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().num_blocks, blocks_per_max_len_seq(in));
  // One byte less: refused.
  m.free_bytes -= 1;
  EXPECT_FALSE(size_kv_cache(in, &m).ok());
}

TEST(KvCacheSizing, UtilizationOutOfRange) {
  KvCacheSizingInputs in = llama8b_like();
  ProfiledMemory m;
  m.total_bytes = 80 * kGiB;
  m.free_bytes = 70 * kGiB;
  for (double u : {0.0, -0.5, 1.5}) {
    in.gpu_memory_utilization = u;
    Result<KvCacheSizing> r = size_kv_cache(in, &m);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().code() == StatusCode::kInvalidArgument);
  }
}

TEST(KvCacheSizing, ProfileOnFakeDevice) {
  FakeMemoryBackend dev(64 * kGiB, 512 * kMiB);
  Buffer weights = dev.allocate_buffer(16 * kGiB);
  Buffer workspace = dev.allocate_buffer(2 * kGiB);
  ProfiledMemory m = profile_memory(&dev, [&] {
    Buffer transient = dev.allocate_buffer(3 * kGiB);  // released before the measurement
    Buffer kept = dev.allocate_buffer(kGiB);
    workspace = std::move(kept);  // the old 2 GiB workspace is freed here
  });
  EXPECT_EQ(m.total_bytes, 64 * kGiB);
  EXPECT_EQ(m.allocated_bytes, 17 * kGiB);
  EXPECT_EQ(m.peak_allocated_bytes, 22 * kGiB);
  // Now in use: context + 17 GiB; at the peak 5 GiB more was live.
  EXPECT_EQ(m.peak_used_bytes(), 512 * kMiB + 22 * kGiB);
  KvCacheSizingInputs in = llama8b_like();
  Result<KvCacheSizing> r = size_kv_cache(in, &m);
  ASSERT_TRUE(r.ok());
  const int64_t budget = static_cast<int64_t>(0.9 * 64 * kGiB) - (512 * kMiB + 22 * kGiB);
  EXPECT_EQ(r.value().num_blocks, budget / in.block_bytes);
  // The cache then fits the device.
  Buffer cache = dev.allocate_buffer(static_cast<size_t>(r.value().num_blocks * in.block_bytes));
  EXPECT_LE(dev.memory_info().total_bytes - dev.memory_info().free_bytes, static_cast<int64_t>(0.9 * 64 * kGiB));
}

TEST(AllocationStats, LiveAndPeak) {
  AllocationStats s;
  int a = 0, b = 0;
  s.on_allocate(&a, 100);
  s.on_allocate(&b, 50);
  EXPECT_EQ(s.allocated_bytes(), 150);
  EXPECT_EQ(s.peak_bytes(), 150);
  s.on_deallocate(&a);
  EXPECT_EQ(s.allocated_bytes(), 50);
  EXPECT_EQ(s.peak_bytes(), 150);
  s.reset_peak();
  EXPECT_EQ(s.peak_bytes(), 50);
  EXPECT_CHECK_FAILS(s.on_deallocate(&a));
  EXPECT_CHECK_FAILS(s.on_allocate(&b, 1));
}
