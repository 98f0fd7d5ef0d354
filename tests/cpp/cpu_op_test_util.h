// Helpers of the CPU backend op tests (test_cpu_kernels.cc, test_cpu_attention.cc): seeded
// random data, a bfloat16 reference rounding, comparison against a double-precision reference,
// and OP_TEST, which records the backend ops that have a case (checked against backend.h by
// CpuKernels.every_backend_op_has_a_case).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/isa.h"
#include "cpu_test_util.h"
#include "test_harness.h"

namespace cpu_op_test {

using pagedllm::Backend;
using pagedllm::DType;
using pagedllm::Tensor;
using pagedllm::cpu::Isa;
using cpu_test::bits_of;
using cpu_test::float_of;
using cpu_test::IsaScope;
using cpu_test::make_backend;
using cpu_test::supported_isas;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Ops with at least one case in any op test file.
inline std::set<std::string>& covered_ops() {
  static std::set<std::string> ops;
  return ops;
}

struct Rng {
  std::mt19937 gen;
  explicit Rng(uint32_t seed) : gen(seed) {}
  float uniform(float lo = -1.0f, float hi = 1.0f) {
    return std::uniform_real_distribution<float>(lo, hi)(gen);
  }
  int randint(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen); }
  std::vector<float> floats(size_t n, float lo = -1.0f, float hi = 1.0f) {
    std::vector<float> v(n);
    for (float& x : v) x = uniform(lo, hi);
    return v;
  }
};


// Reference float -> bfloat16: picks the nearer of the two neighbouring bfloat16 values
// (ties to the even one), by comparing distances in double.
inline uint16_t ref_bf16(float f) {
  if (std::isnan(f)) return static_cast<uint16_t>((bits_of(f) >> 16) | 0x7fc0u);
  if (std::isinf(f)) return static_cast<uint16_t>(bits_of(f) >> 16);
  uint32_t lo = bits_of(f) & 0xffff0000u;
  double dl = std::fabs(static_cast<double>(f) - float_of(lo));
  double dh = std::fabs(static_cast<double>(float_of(lo + 0x10000u)) - f);
  if (dl < dh || (dl == dh && ((lo >> 16) & 1u) == 0)) return static_cast<uint16_t>(lo >> 16);
  return static_cast<uint16_t>((lo + 0x10000u) >> 16);
}
inline float bf16_value(uint16_t h) { return float_of(static_cast<uint32_t>(h) << 16); }

// A weight-like tensor held as float32 or bfloat16, plus its exact float values.
struct HostWeight {
  std::vector<float> f32;
  std::vector<uint16_t> b16;
  std::vector<float> values;  // what the kernel sees
  DType dtype;
  HostWeight(std::vector<float> v, DType dt) : dtype(dt) {
    if (dt == DType::kBFloat16) {
      for (float x : v) b16.push_back(ref_bf16(x));
      for (uint16_t h : b16) values.push_back(bf16_value(h));
    } else {
      f32 = v;
      values = v;
    }
  }
  void* data() { return dtype == DType::kBFloat16 ? static_cast<void*>(b16.data()) : f32.data(); }
  Tensor tensor(std::initializer_list<int64_t> shape) { return Tensor::contiguous(data(), dtype, shape); }
};

// A strided [rows, cols] view of buf, whose rows are ld floats apart.
inline Tensor strided(std::vector<float>& buf, int64_t rows, int64_t cols, int64_t ld) {
  Tensor t = Tensor::contiguous(buf.data(), DType::kFloat32, {rows, ld});
  return t.slice_cols(0, cols);
}

// Compares got[r * ld + c] with want[r * cols + c] (|diff| <= tol[r * cols + c]); padding
// columns must still hold NaN (never written).
inline void expect_close(const std::vector<float>& got, int64_t ld, const std::vector<double>& want,
                  int64_t cols, const std::vector<double>& tol, const std::string& what) {
  int64_t rows = static_cast<int64_t>(want.size()) / cols;
  int bad = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < ld; ++c) {
      float g = got[r * ld + c];
      bool ok = c < cols ? std::fabs(g - want[r * cols + c]) <= tol[r * cols + c] : std::isnan(g);
      if (!ok && bad++ < 5) {
        std::string why = c < cols ? "want " + std::to_string(want[r * cols + c]) + " tol " +
                                         std::to_string(tol[r * cols + c])
                                   : std::string("padding overwritten");
        PAGEDLLM_TEST_FAIL_(false, what + ": [" + std::to_string(r) + ", " + std::to_string(c) +
                                       "] got " + std::to_string(g) + ", " + why);
      }
    }
  }
}

inline std::vector<double> uniform_tol(size_t n, double tol) { return std::vector<double>(n, tol); }

inline const char* dname(DType d) { return pagedllm::dtype_name(d); }
inline std::string tag(Isa isa, const std::string& rest) {
  return std::string(pagedllm::cpu::isa_name(isa)) + " " + rest;
}

}  // namespace cpu_op_test

#define OP_TEST(op, name)                                                                   \
  static const bool op##_##name##_covered = cpu_op_test::covered_ops().insert(#op).second; \
  TEST(CpuKernels, op##_##name)
