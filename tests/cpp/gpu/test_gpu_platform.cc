// The compat layer on the host (runs without a device, in the CUDA and in the HIP build): the
// 16-bit float conversions of gpu_compat.cuh against this program's own encodings (on ROCm < 5.7
// they are pagedllm's bit code), and the platform facts the kernels and the dispatch rely on:
// 32-lane warps on CUDA, 64-lane wavefronts on HIP, and no FlashInfer in a HIP build (auto and
// native run the native attention, flashinfer is refused).
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "attention_dispatch.cuh"
#include "gpu_compat.cuh"
#include "gpu_test.h"

namespace {

using namespace pagedllm_test;

template <typename T>
uint16_t bits16(T v) {
  static_assert(sizeof(T) == 2, "16-bit storage");
  uint16_t b;
  std::memcpy(&b, &v, sizeof(b));
  return b;
}

std::vector<float> conversion_inputs() {
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -1.0f, 3.14159265f, 65504.0f, -65520.0f, 1e-40f, 6e-8f,
                          std::numeric_limits<float>::max(), std::numeric_limits<float>::min(),
                          std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                          std::nanf("")};
  for (int e = -3; e <= 3; ++e) {  // ties and near-ties of both formats around powers of two
    for (float frac : {1.0f + 1.0f / 256, 1.0f + 3.0f / 256, 1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048,
                       1.0f + 1.0f / 4096}) {
      v.push_back(std::ldexp(frac, e));
      v.push_back(-std::ldexp(frac, e));
    }
  }
  Rng rng(11);
  std::uniform_real_distribution<float> dist(-1e4f, 1e4f);
  for (int i = 0; i < 2000; ++i) v.push_back(dist(rng));
  return v;
}

// encode/decode: the compat header's pair; ref_bits/ref_float: this program's encodings.
template <typename Encode, typename Decode>
void check_conversions(Encode encode, Decode decode, uint16_t (*ref_bits)(float), float (*ref_float)(uint16_t)) {
  for (float f : conversion_inputs()) {
    const auto v = encode(f);
    const float back = decode(v);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(back));
      continue;
    }
    EXPECT_EQ(bits16(v), ref_bits(f));
    EXPECT_EQ(back, ref_float(ref_bits(f)));
  }
}

HOST_TEST(GpuPlatform, bfloat16_conversions_round_to_nearest_even) {
  check_conversions(pagedllm::gpu_float_to_bfloat16, pagedllm::gpu_bfloat16_to_float, float_to_bf16_bits,
                    bf16_bits_to_float);
}

HOST_TEST(GpuPlatform, half_conversions_round_to_nearest_even) {
  check_conversions(pagedllm::gpu_float_to_half, pagedllm::gpu_half_to_float, float_to_half_bits, half_bits_to_float);
}

HOST_TEST(GpuPlatform, warp_size_and_attention_dispatch) {
  const std::string platform = PAGEDLLM_GPU_PLATFORM_NAME;
  EXPECT_TRUE(platform == "cuda" || platform == "hip");
  EXPECT_EQ(PAGEDLLM_WARP_SIZE, platform == "hip" ? 64 : 32);
  if (platform != "hip") return;
  EXPECT_FALSE(pagedllm::flashinfer_compiled());
  pagedllm::AttentionBackendKind kind = pagedllm::AttentionBackendKind::kFlashInfer;
  std::string error;
  EXPECT_TRUE(pagedllm::resolve_attention_backend("auto", &kind, &error));
  EXPECT_TRUE(kind == pagedllm::AttentionBackendKind::kNative);
  kind = pagedllm::AttentionBackendKind::kFlashInfer;
  EXPECT_TRUE(pagedllm::resolve_attention_backend("native", &kind, &error));
  EXPECT_TRUE(kind == pagedllm::AttentionBackendKind::kNative);
  EXPECT_FALSE(pagedllm::resolve_attention_backend("flashinfer", &kind, &error));
  EXPECT_TRUE(error.find("flashinfer") != std::string::npos && error.find("native") != std::string::npos);
}

}  // namespace
