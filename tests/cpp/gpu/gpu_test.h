// The GPU kernel test program (pagedllm_gpu_tests): every GPU launcher against a naive host
// reference on seeded random inputs, NaN-poisoned outputs and per-dtype tolerances.
//
// Without a device the program runs only the HOST_TEST cases (host references, launcher shape
// checks, op coverage), prints "SKIPPED: no GPU (<reason>)" as its last line and exits 0 when
// those pass; tests/python/test_gpu_kernels.py turns that into a pytest skip.
//
// Adding a file of cases (attention, sampling, backend engineers):
//   1. Create tests/cpp/gpu/test_gpu_<op>.cc (host C++; it may include cuda/ headers such as
//      "kernels/<op>.cuh", which are valid host C++) and list it in tests/cpp/gpu/CMakeLists.txt.
//   2. Write cases with GPU_OP_TEST(<op>, <case>) where <op> is the Backend op (backend.h) or the
//      launcher name without "launch_" (cuda/kernels/*.cuh); its suite is Gpu_<op>. The coverage
//      case fails while any Backend op or launcher has no GPU_OP_TEST. HOST_TEST(<suite>, <case>)
//      (suite not starting with "Gpu_") also runs without a device: host-side checks only.
//   3. In a case: build inputs as TestTensor (host mirror + device copy), poison outputs, launch
//      on gpu_stream(), call sync_device(), then compare fetch() against a reference computed on
//      the host mirrors (host_reference.h has one per op) with expect_close / expect_equal:
//
//        Rng rng(7);
//        TestTensor x(DType::kBFloat16, {5, 96}, {100, 1});  // strided rows
//        x.fill_random(rng, -2, 2);                          // padding stays poisoned
//        TestTensor out(DType::kBFloat16, {5, 48});          // poisoned with NaN
//        launch_silu_and_mul({x.dev(), out.dev()}, gpu_stream());
//        sync_device();
//        ref::silu_and_mul({x.host(), out.host()});          // out's host mirror = expected
//        expect_close(out.fetch(), out, tolerance(out.dtype()), "out");
//
//      expect_close compares the whole storage, padding included, so an unwritten element
//      (NaN left) or a write past the view (padding changed) fails.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "backend/tensor.h"
#include "gpu_compat.cuh"
#include "test_harness.h"

namespace pagedllm_test {

// Backend ops and launchers that have at least one GPU_OP_TEST.
std::set<std::string>& covered_ops();
// Full names ("Suite.name") of the cases that run without a device.
std::set<std::string>& host_cases();
struct HostCaseMark {
  explicit HostCaseMark(const char* full) { host_cases().insert(full); }
};

// True when main found a device (set before any case runs).
bool device_available();
// The stream every case launches on (created by main; a non-blocking stream, so a launcher that
// ignores its stream argument races with the checks and fails).
pagedllm::gpuStream_t gpu_stream();
// Waits for gpu_stream() and fails the case (ASSERT) on any pending device error.
void sync_device();

// Per-dtype comparison tolerance: |got - ref| <= atol + rtol * |ref|.
struct Tolerance {
  double rtol;
  double atol;
};
Tolerance tolerance(pagedllm::DType dtype);  // fp32 1e-5, bf16 1e-2, fp16 2e-3 (atol = rtol)

// Host encodings of the 16-bit float formats (round to nearest even; NaN stays NaN).
uint16_t float_to_bf16_bits(float f);
float bf16_bits_to_float(uint16_t h);
uint16_t float_to_half_bits(float f);
float half_bits_to_float(uint16_t h);
// Rounds v to float32 and then to `dtype` (integers: truncation toward zero) and back.
double round_to_dtype(double v, pagedllm::DType dtype);

using Rng = std::mt19937_64;

// A strided tensor with a host mirror and (when a device is present) a device copy of the same
// bytes. Storage covers the largest offset of the view; elements outside the view are padding.
// A new tensor is fully poisoned: NaN for float dtypes, kIntPoison for integers.
class TestTensor {
 public:
  static constexpr int64_t kIntPoison = -777;

  TestTensor(pagedllm::DType dtype, std::initializer_list<int64_t> shape,
             std::initializer_list<int64_t> strides = {});
  TestTensor(const TestTensor& other);  // copies the host mirror only (no device copy)
  TestTensor& operator=(const TestTensor&) = delete;
  TestTensor(TestTensor&& other) noexcept;
  ~TestTensor();

  pagedllm::DType dtype() const { return dtype_; }
  int ndim() const { return ndim_; }
  int64_t size(int dim) const { return shape_[dim]; }
  int64_t stride(int dim) const { return stride_[dim]; }
  int64_t storage_elements() const { return storage_elements_; }
  // Storage offset (elements) of a logical index (trailing dims default to 0).
  int64_t offset(int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0) const;

  // Storage element `off` decoded to double / encoded from double (round_to_dtype).
  double get(int64_t off) const;
  void set(int64_t off, double v);
  double at(int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0) const;

  // Every logical element uniform in [lo, hi) rounded to the dtype, then upload().
  void fill_random(Rng& rng, double lo, double hi);
  // Sets logical elements from `values` in row-major logical order, then upload().
  void fill(const std::vector<double>& values);
  // Copies the host mirror to the device (no-op without a device).
  void upload();
  // A host-only copy whose mirror holds the device bytes (waits for gpu_stream()).
  TestTensor fetch() const;

  // Views of the same shape and strides on the device / on the host mirror.
  pagedllm::Tensor dev() const;
  pagedllm::Tensor host() const;
  const void* host_data() const { return host_.data(); }

 private:
  pagedllm::DType dtype_;
  int ndim_ = 0;
  int64_t shape_[pagedllm::Tensor::kMaxDims] = {0, 0, 0, 0};
  int64_t stride_[pagedllm::Tensor::kMaxDims] = {0, 0, 0, 0};
  int64_t storage_elements_ = 0;
  std::vector<unsigned char> host_;  // [storage_elements * dtype_size]
  void* device_ = nullptr;           // same bytes on the device, or nullptr
};

// Every storage element of got equals expected's within tol (NaN matches only NaN); reports
// the first few mismatches with their offsets and fails the case (EXPECT).
void expect_close(const TestTensor& got, const TestTensor& expected, Tolerance tol, const std::string& what);
// Bitwise equality of the storage.
void expect_equal(const TestTensor& got, const TestTensor& expected, const std::string& what);

// The float activation dtypes, for loops over dtypes.
const std::vector<pagedllm::DType>& float_dtypes();

}  // namespace pagedllm_test

#define GPU_OP_TEST(op, name)                                                             \
  static const bool op##_##name##_gpu_covered = ::pagedllm_test::covered_ops().insert(#op).second; \
  TEST(Gpu_##op, name)

#define HOST_TEST(suite, name)                                                            \
  static ::pagedllm_test::HostCaseMark suite##_##name##_host_mark(#suite "." #name);    \
  TEST(suite, name)
