// CPU packed linear (Backend::pack_linear_weight + linear on the packed weight): against a
// bit-exact scalar reference (the fma chain of packed_linear_impl.h's contract) under every ISA
// tier this machine supports; rows are bit-identical whatever M, tile, thread count or tier;
// fused parts equal separate weights; bad shapes are refused.
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/isa.h"
#include "backend/cpu/packed_weight.h"
#include "cpu_test_util.h"
#include "test_harness.h"

namespace {

using pagedllm::Backend;
using pagedllm::Buffer;
using pagedllm::DType;
using pagedllm::Tensor;
using pagedllm::cpu::Isa;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

using cpu_test::bits_of;
using cpu_test::IsaScope;
using cpu_test::make_backend;
using cpu_test::supported_isas;

float bf16_value(uint16_t h) {
  uint32_t b = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// An [n, k] weight as float32 or bfloat16 (truncated random floats) plus the values seen.
struct HostMatrix {
  DType dtype;
  int64_t n, k;
  std::vector<float> f32;
  std::vector<uint16_t> b16;
  std::vector<float> values;  // [n, k]
  HostMatrix(DType dt, int64_t rows, int64_t cols, std::mt19937& gen) : dtype(dt), n(rows), k(cols) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (int64_t i = 0; i < n * k; ++i) {
      float v = u(gen);
      if (dt == DType::kBFloat16) {
        b16.push_back(static_cast<uint16_t>(bits_of(v) >> 16));
        values.push_back(bf16_value(b16.back()));
      } else {
        f32.push_back(v);
        values.push_back(v);
      }
    }
  }
  Tensor tensor() {
    void* d = dtype == DType::kBFloat16 ? static_cast<void*>(b16.data()) : f32.data();
    return Tensor::contiguous(d, dtype, {n, k});
  }
};

// The contract: acc = fma(x[k], w[k], acc) over k in order from 0, then + bias.
float ref_dot(const float* x, const float* w, int64_t k, float bias) {
  float acc = 0.0f;
  for (int64_t i = 0; i < k; ++i) acc = std::fma(x[i], w[i], acc);
  return acc + bias;
}

struct Case {
  int64_t m, k;
  std::vector<int64_t> part_rows;  // N = sum
  bool strided;
  bool bias;
};

// Runs one packed linear and returns out ([m, ldo], padding NaN); checks it bit for bit.
std::vector<float> run_case(Backend* backend, const Case& c, DType wdt, DType bias_dt,
                            uint32_t seed, const std::string& what) {
  std::mt19937 gen(seed);
  std::vector<HostMatrix> parts;
  std::vector<Tensor> tensors;
  for (int64_t r : c.part_rows) parts.emplace_back(wdt, r, c.k, gen);
  int64_t n = 0;
  for (HostMatrix& h : parts) {
    tensors.push_back(h.tensor());
    n += h.n;
  }
  HostMatrix bias(bias_dt, 1, n, gen);
  const int64_t ldx = c.strided ? c.k + 3 : c.k, ldo = c.strided ? n + 5 : n;
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  std::vector<float> x(c.m * ldx, kNaN), out(c.m * ldo, kNaN);
  for (int64_t r = 0; r < c.m; ++r)
    for (int64_t i = 0; i < c.k; ++i) x[r * ldx + i] = u(gen);
  Buffer storage;
  Tensor packed = backend->pack_linear_weight(tensors, &storage);
  EXPECT_TRUE(packed.data != nullptr && pagedllm::cpu::is_packed_weight(packed));
  pagedllm::LinearParams p;
  p.x = Tensor::contiguous(x.data(), DType::kFloat32, {c.m, ldx}).slice_cols(0, c.k);
  p.weight = packed;
  if (c.bias) p.bias = Tensor::contiguous(bias_dt == DType::kBFloat16 ? static_cast<void*>(bias.b16.data())
                                                                      : bias.f32.data(),
                                          bias_dt, {n});
  p.out = Tensor::contiguous(out.data(), DType::kFloat32, {c.m, ldo}).slice_cols(0, n);
  backend->linear(p);
  std::vector<float> w;  // [n, k]
  for (HostMatrix& h : parts) w.insert(w.end(), h.values.begin(), h.values.end());
  int bad = 0;
  for (int64_t r = 0; r < c.m; ++r)
    for (int64_t j = 0; j < ldo; ++j) {
      float got = out[r * ldo + j];
      bool ok = j < n ? bits_of(got) == bits_of(ref_dot(&x[r * ldx], &w[j * c.k], c.k,
                                                        c.bias ? bias.values[j] : 0.0f))
                      : std::isnan(got);
      if (!ok && bad++ < 5)
        PAGEDLLM_TEST_FAIL_(false, what + " [" + std::to_string(r) + ", " + std::to_string(j) +
                                       "] got " + std::to_string(got));
    }
  return out;
}

std::string name(Isa isa, DType wdt, const Case& c) {
  std::string s = std::string(pagedllm::cpu::isa_name(isa)) + " " + pagedllm::dtype_name(wdt) +
                  " M=" + std::to_string(c.m) + " K=" + std::to_string(c.k) + " N=";
  for (int64_t r : c.part_rows) s += std::to_string(r) + "+";
  return s + (c.bias ? " bias" : "") + (c.strided ? " strided" : "");
}

TEST(CpuPackedLinear, bit_exact_on_every_tier) {
  auto backend = make_backend(2);
  const Case cases[] = {
      {1, 64, {32}, false, false},        {1, 40, {33}, true, true},
      {2, 200, {129}, false, true},       {3, 17, {100}, true, false},
      {4, 96, {64, 16, 16}, false, true}, {5, 33, {200}, true, true},
      {6, 128, {96}, false, false},       {7, 64, {31}, false, true},
      {11, 50, {65}, true, false},        {12, 80, {128}, false, true},
      {13, 80, {70}, true, true},         {17, 1024, {260}, true, true},
      {32, 512, {256, 64, 64}, false, true}, {100, 72, {40}, true, true},
      {130, 256, {513}, false, false},
  };
  uint32_t seed = 1;
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    for (const Case& c : cases)
      for (DType wdt : {DType::kFloat32, DType::kBFloat16})
        run_case(backend.get(), c, wdt, seed % 2 ? DType::kFloat32 : DType::kBFloat16, seed++,
                 name(isa, wdt, c));
  }
}

// A row alone (M = 1), the same row among M rows, on 1 or 3 threads and on every tier: the
// same bits (the batch-composition contract of the packed kernels).
TEST(CpuPackedLinear, rows_do_not_depend_on_batch_threads_or_tier) {
  auto one = make_backend(1);
  auto three = make_backend(3);
  for (DType wdt : {DType::kFloat32, DType::kBFloat16}) {
    std::vector<float> first;
    for (Isa isa : supported_isas()) {
      IsaScope scope(isa);
      for (int64_t m : {1, 2, 5, 12, 31, 97}) {
        for (Backend* b : {one.get(), three.get()}) {
          // Seed fixes weights and the first row of x: same seed, M rows, row 0 compared.
          Case c{m, 300, {200, 40}, false, true};
          std::vector<float> out = run_case(b, c, wdt, DType::kFloat32, 42, name(isa, wdt, c));
          std::vector<float> row0(out.begin(), out.begin() + 240);
          if (first.empty()) first = row0;
          EXPECT_TRUE(std::memcmp(first.data(), row0.data(), 240 * sizeof(float)) == 0);
        }
      }
    }
  }
}

TEST(CpuPackedLinear, refuses_mismatched_shapes) {
  auto backend = make_backend(1);
  std::mt19937 gen(3);
  HostMatrix w(DType::kFloat32, 40, 16, gen), other(DType::kFloat32, 8, 12, gen);
  Buffer storage;
  Tensor packed = backend->pack_linear_weight({w.tensor()}, &storage);
  EXPECT_EQ(packed.shape[0], int64_t{2});
  EXPECT_EQ(packed.shape[1], int64_t{16});
  std::vector<float> x(16, 1.0f), out(100, 0.0f);
  pagedllm::LinearParams p;
  p.x = Tensor::contiguous(x.data(), DType::kFloat32, {1, 16});
  p.weight = packed;
  p.out = Tensor::contiguous(out.data(), DType::kFloat32, {1, 70});  // needs 3 panels
  bool threw = false;
  try {
    backend->linear(p);
  } catch (const std::exception&) {
    threw = true;
  }
  EXPECT_TRUE(threw);
  threw = false;
  Buffer s2;
  try {
    backend->pack_linear_weight({w.tensor(), other.tensor()}, &s2);  // K differs
  } catch (const std::exception&) {
    threw = true;
  }
  EXPECT_TRUE(threw);
}

}  // namespace
