// TestTensor, host float encodings and comparisons of the GPU kernel tests (see gpu_test.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

#include "backend/cpu/float_convert.h"
#include "gpu_test.h"

namespace pagedllm_test {

using pagedllm::DType;

namespace {

using pagedllm::cpu::bits_to_float;
using pagedllm::cpu::float_to_bits;

bool is_float(DType d) { return d == DType::kFloat32 || d == DType::kBFloat16 || d == DType::kFloat16; }

}  // namespace

std::set<std::string>& covered_ops() {
  static std::set<std::string> ops;
  return ops;
}

std::set<std::string>& host_cases() {
  static std::set<std::string> cases;
  return cases;
}

Tolerance tolerance(DType dtype) {
  switch (dtype) {
    case DType::kBFloat16: return {1e-2, 1e-2};
    case DType::kFloat16: return {2e-3, 2e-3};
    default: return {1e-5, 1e-5};
  }
}

const std::vector<DType>& float_dtypes() {
  static const std::vector<DType> dtypes = {DType::kFloat32, DType::kBFloat16, DType::kFloat16};
  return dtypes;
}

uint16_t float_to_bf16_bits(float f) {
  uint32_t b = float_to_bits(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((b >> 16) | 0x40u);
  b += 0x7fffu + ((b >> 16) & 1u);
  return static_cast<uint16_t>(b >> 16);
}

float bf16_bits_to_float(uint16_t h) { return bits_to_float(static_cast<uint32_t>(h) << 16); }

uint16_t float_to_half_bits(float f) {
  const uint32_t b = float_to_bits(f);
  const auto sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
  const uint32_t a = b & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (a >= 0x38800000u) {                                              // normal half (>= 2^-14)
    const uint32_t rounded = a + 0xfffu + ((a >> 13) & 1u);
    return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
  }
  // Subnormal half: units of 2^-24, round to nearest even (the default rounding mode);
  // 1024 units is the smallest normal, which is also its encoding.
  const float units = std::nearbyint(bits_to_float(a) * 16777216.0f);
  return static_cast<uint16_t>(sign | static_cast<uint16_t>(units));
}

float half_bits_to_float(uint16_t h) {
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  float v;
  if (exp == 0x1f) {
    v = mant ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -24);
  } else {
    v = std::ldexp(static_cast<float>(1024 + mant), exp - 25);
  }
  return (h & 0x8000) ? -v : v;
}

double round_to_dtype(double v, DType dtype) {
  const auto f = static_cast<float>(v);
  switch (dtype) {
    case DType::kFloat32: return f;
    case DType::kBFloat16: return bf16_bits_to_float(float_to_bf16_bits(f));
    case DType::kFloat16: return half_bits_to_float(float_to_half_bits(f));
    case DType::kInt32: return static_cast<double>(static_cast<int32_t>(v));
    case DType::kInt64: return static_cast<double>(static_cast<int64_t>(v));
  }
  return v;
}

TestTensor::TestTensor(DType dtype, std::initializer_list<int64_t> shape, std::initializer_list<int64_t> strides)
    : dtype_(dtype), ndim_(static_cast<int>(shape.size())) {
  PAGEDLLM_CHECK(ndim_ >= 1 && ndim_ <= pagedllm::Tensor::kMaxDims, "TestTensor rank " << ndim_);
  PAGEDLLM_CHECK(strides.size() == 0 || strides.size() == shape.size(), "TestTensor strides rank");
  std::copy(shape.begin(), shape.end(), shape_);
  if (strides.size() == 0) {
    int64_t s = 1;
    for (int d = ndim_ - 1; d >= 0; --d) {
      stride_[d] = s;
      s *= shape_[d];
    }
  } else {
    std::copy(strides.begin(), strides.end(), stride_);
  }
  int64_t last = 0;
  bool empty = false;
  for (int d = 0; d < ndim_; ++d) {
    if (shape_[d] == 0) empty = true;
    last += (shape_[d] - 1) * stride_[d];
  }
  storage_elements_ = empty ? 0 : last + 1;
  host_.resize(static_cast<size_t>(storage_elements_) * pagedllm::dtype_size(dtype_));
  for (int64_t i = 0; i < storage_elements_; ++i)
    set(i, is_float(dtype_) ? std::numeric_limits<double>::quiet_NaN() : static_cast<double>(kIntPoison));
  if (device_available() && !host_.empty()) {
    PAGEDLLM_GPU_CHECK(pagedllm::gpuMalloc(&device_, host_.size()));
    upload();
  }
}

TestTensor::TestTensor(const TestTensor& other)
    : dtype_(other.dtype_), ndim_(other.ndim_), storage_elements_(other.storage_elements_), host_(other.host_) {
  std::copy(other.shape_, other.shape_ + 4, shape_);
  std::copy(other.stride_, other.stride_ + 4, stride_);
}

TestTensor::TestTensor(TestTensor&& other) noexcept
    : dtype_(other.dtype_), ndim_(other.ndim_), storage_elements_(other.storage_elements_),
      host_(std::move(other.host_)), device_(other.device_) {
  std::copy(other.shape_, other.shape_ + 4, shape_);
  std::copy(other.stride_, other.stride_ + 4, stride_);
  other.device_ = nullptr;
}

TestTensor::~TestTensor() {
  if (device_ != nullptr) pagedllm::gpuFree(device_);
}

int64_t TestTensor::offset(int64_t i0, int64_t i1, int64_t i2, int64_t i3) const {
  return i0 * stride_[0] + i1 * stride_[1] + i2 * stride_[2] + i3 * stride_[3];
}

double TestTensor::get(int64_t off) const {
  const unsigned char* p = host_.data() + off * static_cast<int64_t>(pagedllm::dtype_size(dtype_));
  switch (dtype_) {
    case DType::kFloat32: { float f; std::memcpy(&f, p, 4); return f; }
    case DType::kBFloat16: { uint16_t h; std::memcpy(&h, p, 2); return bf16_bits_to_float(h); }
    case DType::kFloat16: { uint16_t h; std::memcpy(&h, p, 2); return half_bits_to_float(h); }
    case DType::kInt32: { int32_t i; std::memcpy(&i, p, 4); return i; }
    case DType::kInt64: { int64_t i; std::memcpy(&i, p, 8); return static_cast<double>(i); }
  }
  return 0;
}

void TestTensor::set(int64_t off, double v) {
  unsigned char* p = host_.data() + off * static_cast<int64_t>(pagedllm::dtype_size(dtype_));
  switch (dtype_) {
    case DType::kFloat32: { float f = static_cast<float>(v); std::memcpy(p, &f, 4); break; }
    case DType::kBFloat16: { uint16_t h = float_to_bf16_bits(static_cast<float>(v)); std::memcpy(p, &h, 2); break; }
    case DType::kFloat16: { uint16_t h = float_to_half_bits(static_cast<float>(v)); std::memcpy(p, &h, 2); break; }
    case DType::kInt32: { auto i = static_cast<int32_t>(v); std::memcpy(p, &i, 4); break; }
    case DType::kInt64: { auto i = static_cast<int64_t>(v); std::memcpy(p, &i, 8); break; }
  }
}

double TestTensor::at(int64_t i0, int64_t i1, int64_t i2, int64_t i3) const {
  return get(offset(i0, i1, i2, i3));
}

namespace {

// Calls fn(storage offset) for every logical element in row-major order.
template <typename Fn>
void for_each_logical(const int64_t* shape, const int64_t* stride, int ndim, Fn fn) {
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= shape[d];
  for (int64_t linear = 0; linear < n; ++linear) {
    int64_t rest = linear, off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      off += (rest % shape[d]) * stride[d];
      rest /= shape[d];
    }
    fn(off);
  }
}

}  // namespace

void TestTensor::fill_random(Rng& rng, double lo, double hi) {
  std::uniform_real_distribution<double> dist(lo, hi);
  for_each_logical(shape_, stride_, ndim_, [&](int64_t off) { set(off, dist(rng)); });
  upload();
}

void TestTensor::fill(const std::vector<double>& values) {
  size_t i = 0;
  for_each_logical(shape_, stride_, ndim_, [&](int64_t off) {
    PAGEDLLM_CHECK(i < values.size(), "TestTensor::fill: too few values");
    set(off, values[i++]);
  });
  PAGEDLLM_CHECK(i == values.size(), "TestTensor::fill: " << values.size() << " values for " << i << " elements");
  upload();
}

void TestTensor::upload() {
  if (device_ == nullptr) return;
  PAGEDLLM_GPU_CHECK(pagedllm::gpuMemcpyAsync(device_, host_.data(), host_.size(), pagedllm::gpuMemcpyHostToDevice,
                                              gpu_stream()));
  PAGEDLLM_GPU_CHECK(pagedllm::gpuStreamSynchronize(gpu_stream()));
}

TestTensor TestTensor::fetch() const {
  TestTensor copy(*this);
  if (device_ != nullptr) {
    PAGEDLLM_GPU_CHECK(pagedllm::gpuStreamSynchronize(gpu_stream()));
    PAGEDLLM_GPU_CHECK(pagedllm::gpuMemcpy(copy.host_.data(), device_, host_.size(), pagedllm::gpuMemcpyDeviceToHost));
  }
  return copy;
}

pagedllm::Tensor TestTensor::dev() const {
  pagedllm::Tensor t = host();
  t.data = device_;
  return t;
}

pagedllm::Tensor TestTensor::host() const {
  pagedllm::Tensor t;
  t.data = const_cast<unsigned char*>(host_.data());
  t.dtype = dtype_;
  t.ndim = ndim_;
  std::copy(shape_, shape_ + 4, t.shape);
  std::copy(stride_, stride_ + 4, t.stride);
  return t;
}

void expect_close(const TestTensor& got, const TestTensor& expected, Tolerance tol, const std::string& what) {
  PAGEDLLM_CHECK(got.storage_elements() == expected.storage_elements(), "expect_close: storage sizes differ");
  int64_t bad = 0;
  std::ostringstream os;
  for (int64_t i = 0; i < got.storage_elements(); ++i) {
    const double g = got.get(i), e = expected.get(i);
    const bool ok = (std::isnan(g) && std::isnan(e)) ||
                    (!std::isnan(g) && !std::isnan(e) &&
                     (g == e || std::fabs(g - e) <= tol.atol + tol.rtol * std::fabs(e)));
    if (ok) continue;
    if (bad < 5) os << " [" << i << "] got " << g << " want " << e << ";";
    ++bad;
  }
  if (bad > 0) {
    std::ostringstream msg;
    msg << what << " (" << pagedllm::dtype_name(got.dtype()) << "): " << bad << " of " << got.storage_elements()
        << " storage elements differ (rtol " << tol.rtol << ", atol " << tol.atol << "):" << os.str();
    PAGEDLLM_TEST_FAIL_(false, msg.str());
  }
}

void expect_equal(const TestTensor& got, const TestTensor& expected, const std::string& what) {
  PAGEDLLM_CHECK(got.storage_elements() == expected.storage_elements(), "expect_equal: storage sizes differ");
  const auto* g = static_cast<const unsigned char*>(got.host_data());
  const auto* e = static_cast<const unsigned char*>(expected.host_data());
  const size_t elem = pagedllm::dtype_size(got.dtype());
  int64_t bad = 0;
  std::ostringstream os;
  for (int64_t i = 0; i < got.storage_elements(); ++i) {
    if (std::memcmp(g + i * elem, e + i * elem, elem) == 0) continue;
    if (bad < 5) os << " [" << i << "] got " << got.get(i) << " want " << expected.get(i) << ";";
    ++bad;
  }
  if (bad > 0) {
    std::ostringstream msg;
    msg << what << " (" << pagedllm::dtype_name(got.dtype()) << "): " << bad << " of " << got.storage_elements()
        << " storage elements differ bitwise:" << os.str();
    PAGEDLLM_TEST_FAIL_(false, msg.str());
  }
}

}  // namespace pagedllm_test
