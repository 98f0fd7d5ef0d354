// Sanity of the GPU tests' own machinery, without a device: the host float encodings, the
// TestTensor layout and poisoning, and the host references on inputs with known answers.
#include <cmath>
#include <limits>

#include "gpu_test.h"
#include "host_reference.h"

namespace {

using pagedllm::DType;
using pagedllm_test::Rng;
using pagedllm_test::TestTensor;

HOST_TEST(HostReference, bf16_encoding) {
  using pagedllm_test::bf16_bits_to_float;
  using pagedllm_test::float_to_bf16_bits;
  EXPECT_EQ(float_to_bf16_bits(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16_bits(-2.0f), 0xc000);
  EXPECT_EQ(float_to_bf16_bits(1.0f + 1.0f / 256), 0x3f80);      // tie: to even (down)
  EXPECT_EQ(float_to_bf16_bits(1.0f + 3.0f / 256), 0x3f82);      // tie: to even (up)
  EXPECT_EQ(float_to_bf16_bits(1.0f + 1.5f / 256), 0x3f81);      // above the tie: up
  EXPECT_EQ(float_to_bf16_bits(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_TRUE(std::isnan(bf16_bits_to_float(float_to_bf16_bits(std::nanf("")))));
  for (uint32_t h = 0; h < 0x10000; ++h) {  // every non-NaN bfloat16 round-trips exactly
    const float f = bf16_bits_to_float(static_cast<uint16_t>(h));
    if (!std::isnan(f)) EXPECT_EQ(float_to_bf16_bits(f), h);
  }
}

HOST_TEST(HostReference, half_encoding) {
  using pagedllm_test::float_to_half_bits;
  using pagedllm_test::half_bits_to_float;
  EXPECT_EQ(float_to_half_bits(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half_bits(-2.0f), 0xc000);
  EXPECT_EQ(float_to_half_bits(0.1f), 0x2e66);
  EXPECT_EQ(float_to_half_bits(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_half_bits(65519.0f), 0x7bff);
  EXPECT_EQ(float_to_half_bits(65520.0f), 0x7c00);  // the tie above the max rounds to inf
  EXPECT_EQ(float_to_half_bits(-1e10f), 0xfc00);
  EXPECT_EQ(float_to_half_bits(std::ldexp(1.0f, -14)), 0x0400);
  EXPECT_EQ(float_to_half_bits(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(float_to_half_bits(std::ldexp(1.0f, -25)), 0x0000);  // tie: to even (zero)
  EXPECT_EQ(float_to_half_bits(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(float_to_half_bits(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 units: tie to even (2)
  EXPECT_EQ(float_to_half_bits(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie: to even (down)
  EXPECT_EQ(float_to_half_bits(1.0f + std::ldexp(3.0f, -11)), 0x3c02);  // tie: to even (up)
  EXPECT_EQ(float_to_half_bits(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(half_bits_to_float(float_to_half_bits(std::nanf("")))));
  for (uint32_t h = 0; h < 0x10000; ++h) {  // every non-NaN half round-trips exactly
    const float f = half_bits_to_float(static_cast<uint16_t>(h));
    if (!std::isnan(f)) EXPECT_EQ(float_to_half_bits(f), h);
  }
  EXPECT_EQ(half_bits_to_float(0x7bff), 65504.0f);
  EXPECT_EQ(half_bits_to_float(0x0001), std::ldexp(1.0f, -24));
}

HOST_TEST(HostReference, test_tensor_layout_and_poison) {
  TestTensor t(DType::kBFloat16, {3, 4}, {6, 1});
  EXPECT_EQ(t.storage_elements(), 16);
  EXPECT_EQ(t.offset(2, 3), 15);
  for (int64_t i = 0; i < t.storage_elements(); ++i) EXPECT_TRUE(std::isnan(t.get(i)));
  Rng rng(1);
  t.fill_random(rng, -1, 1);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 6; ++c) {
      const double v = t.get(r * 6 + c);
      if (c < 4) {
        EXPECT_TRUE(v >= -1 && v <= 1);
      } else if (r < 2) {
        EXPECT_TRUE(std::isnan(v));  // padding stays poisoned
      }
    }
  TestTensor ids(DType::kInt64, {2});
  EXPECT_EQ(ids.get(0), static_cast<double>(TestTensor::kIntPoison));
  EXPECT_EQ(pagedllm_test::round_to_dtype(1.0 + 1.0 / 512, DType::kBFloat16), 1.0);
}

HOST_TEST(HostReference, rms_norm_known_values) {
  TestTensor x(DType::kFloat32, {2, 4}), res(DType::kFloat32, {2, 4}), w(DType::kFloat32, {4}),
      out(DType::kFloat32, {2, 4});
  x.fill({3, 3, 3, 3, 1, -1, 1, -1});
  res.fill({1, 1, 1, 1, 0, 0, 0, 0});
  w.fill({1, 2, 3, 4});
  pagedllm_test::ref::rms_norm({x.host(), res.host(), w.host(), out.host(), 0.0f});
  for (int64_t i = 0; i < 4; ++i) {
    EXPECT_EQ(res.at(0, i), 4.0);
    EXPECT_NEAR(out.at(0, i), static_cast<double>(i + 1), 1e-6);
    EXPECT_NEAR(out.at(1, i), (i % 2 ? -1.0 : 1.0) * (i + 1), 1e-6);
  }
  pagedllm_test::ref::rms_norm({x.host(), pagedllm::Tensor(), w.host(), x.host(), 0.0f});  // in place
  EXPECT_NEAR(x.at(0, 3), 4.0, 1e-6);
}

HOST_TEST(HostReference, rotary_identity_at_zero_and_norm_preserving) {
  const int64_t d = 8, half = 4, positions = 3;
  TestTensor cache(DType::kFloat32, {positions, d});
  std::vector<double> cs;
  for (int64_t p = 0; p < positions; ++p) {
    for (int64_t i = 0; i < half; ++i) cs.push_back(std::cos(p * std::pow(10000.0, -2.0 * i / d)));
    for (int64_t i = 0; i < half; ++i) cs.push_back(std::sin(p * std::pow(10000.0, -2.0 * i / d)));
  }
  cache.fill(cs);
  TestTensor pos(DType::kInt32, {2}), q(DType::kFloat32, {2, 1, d}), k(DType::kFloat32, {2, 1, d});
  pos.fill({0, 2});
  Rng rng(3);
  q.fill_random(rng, -1, 1);
  k.fill_random(rng, -1, 1);
  const TestTensor q0(q);
  pagedllm_test::ref::rotary_embedding({pos.host(), q.host(), k.host(), cache.host()});
  for (int64_t i = 0; i < d; ++i) EXPECT_NEAR(q.at(0, 0, i), q0.at(0, 0, i), 1e-7);
  for (int64_t i = 0; i < half; ++i) {
    const double before = q0.at(1, 0, i) * q0.at(1, 0, i) + q0.at(1, 0, i + half) * q0.at(1, 0, i + half);
    const double after = q.at(1, 0, i) * q.at(1, 0, i) + q.at(1, 0, i + half) * q.at(1, 0, i + half);
    EXPECT_NEAR(after, before, 1e-6);
  }
  EXPECT_NEAR(q.at(1, 0, 0), q0.at(1, 0, 0) * std::cos(2.0) - q0.at(1, 0, 4) * std::sin(2.0), 1e-6);
}

HOST_TEST(HostReference, write_kv_cache_slots) {
  TestTensor k(DType::kFloat32, {3, 2, 2}), v(DType::kFloat32, {3, 2, 2});
  k.fill({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  v.fill({-1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12});
  TestTensor slots(DType::kInt64, {3}), kc(DType::kFloat32, {2, 2, 4, 2}), vc(DType::kFloat32, {2, 2, 4, 2});
  slots.fill({5, -1, 0});
  pagedllm_test::ref::write_kv_cache({k.host(), v.host(), slots.host(), kc.host(), vc.host()});
  EXPECT_EQ(kc.at(1, 0, 1, 0), 1.0);  // token 0 -> block 1, offset 1
  EXPECT_EQ(kc.at(1, 1, 1, 1), 4.0);
  EXPECT_EQ(vc.at(0, 1, 0, 0), -11.0);  // token 2 -> block 0, offset 0, head 1
  int64_t written = 0;
  for (int64_t i = 0; i < kc.storage_elements(); ++i) written += std::isnan(kc.get(i)) ? 0 : 1;
  EXPECT_EQ(written, 8);  // token 1 (slot -1) skipped
}

HOST_TEST(HostReference, silu_embedding_gather) {
  TestTensor x(DType::kFloat32, {1, 4}), out(DType::kFloat32, {1, 2});
  x.fill({0, 20, 5, 3});
  pagedllm_test::ref::silu_and_mul({x.host(), out.host()});
  EXPECT_EQ(out.at(0, 0), 0.0);
  EXPECT_NEAR(out.at(0, 1), 60.0, 1e-5);
  TestTensor table(DType::kBFloat16, {3, 2}), ids(DType::kInt32, {3}), emb(DType::kFloat32, {3, 2});
  table.fill({1, 2, 3, 4, 5, 6});
  ids.fill({2, 0, 7});
  pagedllm_test::ref::embedding({ids.host(), table.host(), emb.host()});
  EXPECT_EQ(emb.at(0, 1), 6.0);
  EXPECT_EQ(emb.at(1, 0), 1.0);
  EXPECT_TRUE(std::isnan(emb.at(2, 0)));  // out-of-range id -> NaN row
  TestTensor rows(DType::kFloat16, {2, 2}), idx(DType::kInt32, {2}), g(DType::kFloat16, {2, 2});
  rows.fill({1, 2, 3, 4});
  idx.fill({1, -3});
  pagedllm_test::ref::gather_rows({rows.host(), idx.host(), g.host()});
  EXPECT_EQ(g.at(0, 1), 4.0);
  EXPECT_TRUE(std::isnan(g.at(1, 1)));
}

}  // namespace
