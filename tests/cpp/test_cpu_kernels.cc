// CPU backend tests: every op of backend.h against a naive double-precision reference written
// here (seeded random inputs, NaN-poisoned outputs, strided views), under every ISA tier this
// machine supports; the thread pool; tensors, buffers and weight upload.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/isa.h"
#include "cpu_test_util.h"
#include "test_harness.h"
#include "util/check.h"
#include "util/thread_pool.h"

namespace {

using pagedllm::Backend;
using pagedllm::DType;
using pagedllm::Tensor;
using pagedllm::cpu::Isa;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Ops with at least one case below; compared with the ops declared in backend.h.
std::set<std::string>& covered_ops() {
  static std::set<std::string> ops;
  return ops;
}
#define OP_TEST(op, name)                                                          \
  static const bool op##_##name##_covered = covered_ops().insert(#op).second;      \
  TEST(CpuKernels, op##_##name)

using cpu_test::bits_of;
using cpu_test::IsaScope;
using cpu_test::make_backend;
using cpu_test::supported_isas;

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

float float_of(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// Reference float -> bfloat16: picks the nearer of the two neighbouring bfloat16 values
// (ties to the even one), by comparing distances in double.
uint16_t ref_bf16(float f) {
  if (std::isnan(f)) return static_cast<uint16_t>((bits_of(f) >> 16) | 0x7fc0u);
  if (std::isinf(f)) return static_cast<uint16_t>(bits_of(f) >> 16);
  uint32_t lo = bits_of(f) & 0xffff0000u;
  double dl = std::fabs(static_cast<double>(f) - float_of(lo));
  double dh = std::fabs(static_cast<double>(float_of(lo + 0x10000u)) - f);
  if (dl < dh || (dl == dh && ((lo >> 16) & 1u) == 0)) return static_cast<uint16_t>(lo >> 16);
  return static_cast<uint16_t>((lo + 0x10000u) >> 16);
}
float bf16_value(uint16_t h) { return float_of(static_cast<uint32_t>(h) << 16); }

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
Tensor strided(std::vector<float>& buf, int64_t rows, int64_t cols, int64_t ld) {
  Tensor t = Tensor::contiguous(buf.data(), DType::kFloat32, {rows, ld});
  return t.slice_cols(0, cols);
}

// Compares got[r * ld + c] with want[r * cols + c] (|diff| <= tol[r * cols + c]); padding
// columns must still hold NaN (never written).
void expect_close(const std::vector<float>& got, int64_t ld, const std::vector<double>& want,
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

std::vector<double> uniform_tol(size_t n, double tol) { return std::vector<double>(n, tol); }

const char* dname(DType d) { return pagedllm::dtype_name(d); }
std::string tag(Isa isa, const std::string& rest) {
  return std::string(pagedllm::cpu::isa_name(isa)) + " " + rest;
}

// ---------------------------------------------------------------- embedding / gather_rows

OP_TEST(embedding, matches_table_rows) {
  auto backend = make_backend(3);
  Rng rng(1);
  const int64_t vocab = 50, h = 72, t = 13, ld = h + 5;
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    for (DType dt : {DType::kFloat32, DType::kBFloat16}) {
      HostWeight table(rng.floats(vocab * h), dt);
      std::vector<int32_t> ids(t);
      for (auto& id : ids) id = rng.randint(0, vocab - 1);
      ids[0] = 0;
      ids[1] = vocab - 1;
      std::vector<float> out(t * ld, kNaN);
      pagedllm::EmbeddingParams p;
      p.token_ids = Tensor::contiguous(ids.data(), DType::kInt32, {t});
      p.table = table.tensor({vocab, h});
      p.out = strided(out, t, h, ld);
      backend->embedding(p);
      std::vector<double> want;
      for (int32_t id : ids)
        for (int64_t c = 0; c < h; ++c) want.push_back(table.values[id * h + c]);
      expect_close(out, ld, want, h, uniform_tol(want.size(), 0.0), tag(isa, dname(dt)));
      ids[2] = static_cast<int32_t>(vocab);
      EXPECT_CHECK_FAILS(backend->embedding(p));
    }
  }
}

OP_TEST(gather_rows, picks_indexed_rows) {
  auto backend = make_backend(3);
  Rng rng(2);
  const int64_t t = 11, h = 72, r = 6;
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    std::vector<float> x = rng.floats(t * h);
    std::vector<int32_t> idx = {10, 0, 3, 3, 7, 10};
    std::vector<float> out(r * h, kNaN);
    pagedllm::GatherRowsParams p;
    p.x = Tensor::contiguous(x.data(), DType::kFloat32, {t, h});
    p.indices = Tensor::contiguous(idx.data(), DType::kInt32, {r});
    p.out = Tensor::contiguous(out.data(), DType::kFloat32, {r, h});
    backend->gather_rows(p);
    std::vector<double> want;
    for (int32_t i : idx)
      for (int64_t c = 0; c < h; ++c) want.push_back(x[i * h + c]);
    expect_close(out, h, want, h, uniform_tol(want.size(), 0.0), tag(isa, "gather"));
    idx[1] = -1;
    EXPECT_CHECK_FAILS(backend->gather_rows(p));
  }
}

// ---------------------------------------------------------------- norms

// y = x / sqrt(mean(x^2) + eps) * w, in double.
std::vector<double> ref_rms(const std::vector<double>& x, const std::vector<float>& w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  double inv = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * w[i];
  return y;
}

OP_TEST(rms_norm, plain_and_fused_residual) {
  auto backend = make_backend(3);
  Rng rng(3);
  const int64_t n = 7;
  const float eps = 1e-5f;
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    for (int64_t h : {64, 100}) {
      for (DType dt : {DType::kFloat32, DType::kBFloat16}) {
        for (bool residual : {false, true}) {
          const int64_t ld = h + 3;
          HostWeight w(rng.floats(h, 0.5f, 1.5f), dt);
          std::vector<float> x = rng.floats(n * ld, -2.0f, 2.0f);
          std::vector<float> res = rng.floats(n * h, -2.0f, 2.0f);
          std::vector<float> out(n * ld, kNaN);
          pagedllm::RmsNormParams p;
          p.x = strided(x, n, h, ld);
          p.weight = w.tensor({h});
          p.out = strided(out, n, h, ld);
          p.eps = eps;
          if (residual) p.residual = Tensor::contiguous(res.data(), DType::kFloat32, {n, h});
          std::vector<float> res_before = res;
          backend->rms_norm(p);
          std::vector<double> want, want_res;
          for (int64_t r = 0; r < n; ++r) {
            std::vector<double> row(h);
            for (int64_t c = 0; c < h; ++c) {
              row[c] = x[r * ld + c];
              if (residual) row[c] = static_cast<float>(res_before[r * h + c] + x[r * ld + c]);
            }
            for (double v : row) want_res.push_back(v);
            for (double v : ref_rms(row, w.values, eps)) want.push_back(v);
          }
          std::string what = tag(isa, dname(dt)) + " h=" + std::to_string(h) +
                             (residual ? " residual" : "");
          std::vector<double> tol(want.size());
          for (size_t i = 0; i < tol.size(); ++i) tol[i] = 1e-5 * (1.0 + std::fabs(want[i]));
          expect_close(out, ld, want, h, tol, what);
          if (residual) expect_close(res, h, want_res, h, uniform_tol(want_res.size(), 0.0), what + " res");
        }
      }
    }
  }
}

OP_TEST(rms_norm, in_place) {
  auto backend = make_backend(2);
  Rng rng(4);
  const int64_t n = 5, h = 96;
  std::vector<float> w = rng.floats(h);
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    std::vector<float> x = rng.floats(n * h, -2e-3f, 2e-3f);  // small enough for eps to matter
    std::vector<double> want;
    for (int64_t r = 0; r < n; ++r)
      for (double v : ref_rms(std::vector<double>(x.begin() + r * h, x.begin() + (r + 1) * h), w, 1e-6))
        want.push_back(v);
    pagedllm::RmsNormParams p;
    p.x = Tensor::contiguous(x.data(), DType::kFloat32, {n, h});
    p.out = p.x;
    p.weight = Tensor::contiguous(w.data(), DType::kFloat32, {h});
    backend->rms_norm(p);
    expect_close(x, h, want, h, uniform_tol(want.size(), 2e-5), tag(isa, "in place"));
  }
}

OP_TEST(head_rms_norm, strided_heads) {
  auto backend = make_backend(3);
  Rng rng(5);
  const int64_t t = 5, heads = 3;
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    for (int64_t d : {64, 128}) {
      for (DType dt : {DType::kFloat32, DType::kBFloat16}) {
        const int64_t ld = heads * d + 24;  // token stride > heads * D
        HostWeight w(rng.floats(d, 0.5f, 1.5f), dt);
        std::vector<float> x = rng.floats(t * ld, -3.0f, 3.0f);
        for (int64_t r = 0; r < t; ++r)
          for (int64_t c = heads * d; c < ld; ++c) x[r * ld + c] = kNaN;
        std::vector<float> x0 = x;
        pagedllm::HeadRmsNormParams p;
        p.x = Tensor::contiguous(x.data(), DType::kFloat32, {t, ld}).slice_cols(0, heads * d);
        p.x.ndim = 3;
        p.x.shape[1] = heads;
        p.x.shape[2] = d;
        p.x.stride[1] = d;
        p.x.stride[2] = 1;
        p.weight = w.tensor({d});
        backend->head_rms_norm(p);
        std::vector<double> want;
        for (int64_t r = 0; r < t; ++r)
          for (int64_t hh = 0; hh < heads; ++hh) {
            const float* src = x0.data() + r * ld + hh * d;
            for (double v : ref_rms(std::vector<double>(src, src + d), w.values, 1e-6)) want.push_back(v);
          }
        std::vector<double> tol(want.size());
        for (size_t i = 0; i < tol.size(); ++i) tol[i] = 1e-5 * (1.0 + std::fabs(want[i]));
        expect_close(x, ld, want, heads * d, tol, tag(isa, dname(dt)) + " d=" + std::to_string(d));
      }
    }
  }
}

// ---------------------------------------------------------------- linear

struct LinearCase {
  int64_t m, k, n;
  bool strided;
};

std::vector<float> run_linear(Backend* backend, Isa isa, const LinearCase& lc, DType wdt,
                              bool with_bias, Rng& rng) {
  const int64_t ldx = lc.strided ? lc.k + 7 : lc.k;
  const int64_t ldo = lc.strided ? lc.n + 5 : lc.n;
  std::vector<float> x(lc.m * ldx, kNaN);
  for (int64_t r = 0; r < lc.m; ++r)
    for (int64_t c = 0; c < lc.k; ++c) x[r * ldx + c] = rng.uniform();
  HostWeight w(rng.floats(lc.n * lc.k), wdt);
  // The model keeps biases in float32 whatever the weight dtype: cover both pairings.
  HostWeight bias(rng.floats(lc.n), lc.m % 2 ? DType::kFloat32 : wdt);
  std::vector<float> out(lc.m * ldo, kNaN);
  pagedllm::LinearParams p;
  p.x = strided(x, lc.m, lc.k, ldx);
  p.weight = w.tensor({lc.n, lc.k});
  if (with_bias) p.bias = bias.tensor({lc.n});
  p.out = strided(out, lc.m, lc.n, ldo);
  backend->linear(p);
  const double rel = 3e-5;
  std::vector<double> want, tol;
  for (int64_t r = 0; r < lc.m; ++r)
    for (int64_t j = 0; j < lc.n; ++j) {
      double s = with_bias ? bias.values[j] : 0.0, sabs = 0.0;
      for (int64_t c = 0; c < lc.k; ++c) {
        double prod = static_cast<double>(x[r * ldx + c]) * w.values[j * lc.k + c];
        s += prod;
        sabs += std::fabs(prod);
      }
      want.push_back(s);
      tol.push_back(rel * sabs + 1e-5);
    }
  expect_close(out, ldo, want, lc.n, tol,
               tag(isa, dname(wdt)) + " M=" + std::to_string(lc.m) + " K=" + std::to_string(lc.k) +
                   " N=" + std::to_string(lc.n) + (with_bias ? " bias" : "") +
                   (lc.strided ? " strided" : ""));
  return out;
}

OP_TEST(linear, all_paths) {
  auto backend = make_backend(3);
  Rng rng(6);
  const LinearCase cases[] = {{1, 64, 48, false},    {1, 40, 33, true},    {1, 200, 129, false},
                              {3, 200, 129, true},   {17, 200, 129, false},
                              {100, 72, 40, true},   {1, 1024, 300, true}, {8, 333, 77, true},
                              {17, 1024, 260, true}, {100, 256, 513, false}};
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    for (const LinearCase& lc : cases)
      for (DType wdt : {DType::kFloat32, DType::kBFloat16})
        for (bool bias : {false, true}) run_linear(backend.get(), isa, lc, wdt, bias, rng);
  }
}

// ---------------------------------------------------------------- rotary / silu

OP_TEST(rotary_embedding, neox_layout) {
  auto backend = make_backend(3);
  Rng rng(7);
  const int64_t t = 6, hq = 4, hk = 2, max_pos = 40;
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    for (int64_t d : {64, 80, 128}) {
      const int64_t half = d / 2, ld = (hq + 2 * hk) * d;  // q, k, v of a fused qkv buffer
      std::vector<float> cache(max_pos * d);
      for (int64_t pos = 0; pos < max_pos; ++pos)
        for (int64_t i = 0; i < half; ++i) {
          double ang = pos * std::pow(10000.0, -2.0 * i / d);
          cache[pos * d + i] = static_cast<float>(std::cos(ang));
          cache[pos * d + half + i] = static_cast<float>(std::sin(ang));
        }
      std::vector<int32_t> positions(t);
      for (auto& pos : positions) pos = rng.randint(0, max_pos - 1);
      std::vector<float> qkv = rng.floats(t * ld, -2.0f, 2.0f);
      for (int64_t r = 0; r < t; ++r)
        for (int64_t c = (hq + hk) * d; c < ld; ++c) qkv[r * ld + c] = kNaN;
      std::vector<float> before = qkv;
      pagedllm::RotaryParams p;
      Tensor all = Tensor::contiguous(qkv.data(), DType::kFloat32, {t, hq + 2 * hk, d});
      p.q = all;
      p.q.shape[1] = hq;
      p.k = all;
      p.k.data = qkv.data() + hq * d;
      p.k.shape[1] = hk;
      p.positions = Tensor::contiguous(positions.data(), DType::kInt32, {t});
      p.cos_sin_cache = Tensor::contiguous(cache.data(), DType::kFloat32, {max_pos, d});
      backend->rotary_embedding(p);
      const int64_t cols = (hq + hk) * d;  // q and k; the v columns must stay NaN
      std::vector<double> want;
      for (int64_t r = 0; r < t; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          int64_t i = c % d, o = r * ld + c;
          double cs = cache[positions[r] * d + i % half], sn = cache[positions[r] * d + half + i % half];
          want.push_back(i < half ? before[o] * cs - before[o + half] * sn
                                  : before[o] * cs + before[o - half] * sn);
        }
      expect_close(qkv, ld, want, cols, uniform_tol(want.size(), 2e-6), tag(isa, "d=" + std::to_string(d)));
    }
  }
}

OP_TEST(silu_and_mul, matches_reference) {
  auto backend = make_backend(3);
  Rng rng(8);
  const int64_t t = 9, inter = 100, ld = 2 * inter + 3;
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    std::vector<float> x = rng.floats(t * ld, -12.0f, 12.0f);
    x[0] = -100.0f;
    x[1] = 100.0f;
    std::vector<float> out(t * inter, kNaN);
    pagedllm::SiluAndMulParams p;
    p.x = strided(x, t, 2 * inter, ld);
    p.out = Tensor::contiguous(out.data(), DType::kFloat32, {t, inter});
    backend->silu_and_mul(p);
    std::vector<double> want, tol;
    for (int64_t r = 0; r < t; ++r)
      for (int64_t i = 0; i < inter; ++i) {
        double a = x[r * ld + i], b = x[r * ld + inter + i];
        want.push_back(a / (1.0 + std::exp(-a)) * b);
        tol.push_back(2e-6 * std::fabs(want.back()) + 1e-6);
      }
    expect_close(out, inter, want, inter, tol, tag(isa, "silu"));
  }
}

// ---------------------------------------------------------------- KV cache and attention

// A random KV cache [blocks, heads, block_size, d]. The CPU backend stores a (block, head) slab
// of K transposed, [d, block_size] (ops.h): `keys` caches are read that way.
struct Cache {
  DType dtype;
  int64_t blocks, heads, block_size, d;
  bool keys;
  std::vector<float> f32;
  std::vector<uint16_t> b16;
  Cache(DType dt, int64_t nb, int64_t h, int64_t bs, int64_t hd, Rng& rng, bool is_keys = false)
      : dtype(dt), blocks(nb), heads(h), block_size(bs), d(hd), keys(is_keys) {
    std::vector<float> v = rng.floats(nb * h * bs * hd);
    if (dt == DType::kBFloat16) {
      for (float x : v) b16.push_back(ref_bf16(x));
    } else {
      f32 = v;
    }
  }
  Tensor tensor() {
    void* p = dtype == DType::kBFloat16 ? static_cast<void*>(b16.data()) : f32.data();
    return Tensor::contiguous(p, dtype, {blocks, heads, block_size, d});
  }
  float at(int64_t block, int64_t head, int64_t off, int64_t i) const {
    int64_t slab = (block * heads + head) * block_size * d;
    int64_t idx = slab + (keys ? i * block_size + off : off * d + i);
    return dtype == DType::kBFloat16 ? bf16_value(b16[idx]) : f32[idx];
  }
};

OP_TEST(write_kv_cache, slots_and_dtypes) {
  auto backend = make_backend(3);
  Rng rng(9);
  const int64_t t = 10, heads = 2, bs = 8, nb = 6;
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    for (int64_t d : {64, 68}) {
      for (DType dt : {DType::kFloat32, DType::kBFloat16}) {
        const int64_t ld = 3 * heads * d;
        Cache kc(dt, nb, heads, bs, d, rng, true), vc(dt, nb, heads, bs, d, rng);
        Cache k_before = kc, v_before = vc;
        std::vector<float> qkv = rng.floats(t * ld);
        std::vector<int64_t> all_slots(nb * bs);
        std::iota(all_slots.begin(), all_slots.end(), 0);
        std::shuffle(all_slots.begin(), all_slots.end(), rng.gen);
        std::vector<int64_t> slots(all_slots.begin(), all_slots.begin() + t);
        slots[3] = -1;
        slots[7] = -1;
        pagedllm::WriteKvCacheParams p;
        Tensor all = Tensor::contiguous(qkv.data(), DType::kFloat32, {t, 3 * heads, d});
        p.k = all;
        p.k.data = qkv.data() + heads * d;
        p.k.shape[1] = heads;
        p.v = p.k;
        p.v.data = qkv.data() + 2 * heads * d;
        p.slot_mapping = Tensor::contiguous(slots.data(), DType::kInt64, {t});
        p.k_cache = kc.tensor();
        p.v_cache = vc.tensor();
        backend->write_kv_cache(p);
        int bad = 0;
        for (int64_t blk = 0; blk < nb; ++blk)
          for (int64_t h = 0; h < heads; ++h)
            for (int64_t off = 0; off < bs; ++off) {
              int64_t slot = blk * bs + off;
              int64_t tok = std::find(slots.begin(), slots.end(), slot) - slots.begin();
              for (int64_t i = 0; i < d; ++i)
                for (int which = 0; which < 2; ++which) {
                  const Cache& c = which ? vc : kc;
                  float want = (which ? v_before : k_before).at(blk, h, off, i);
                  if (tok < t) {
                    float src = qkv[tok * ld + (1 + which) * heads * d + h * d + i];
                    want = dt == DType::kBFloat16 ? bf16_value(ref_bf16(src)) : src;
                  }
                  if (bits_of(c.at(blk, h, off, i)) != bits_of(want) && bad++ < 5)
                    PAGEDLLM_TEST_FAIL_(false, tag(isa, dname(dt)) + " slot " + std::to_string(slot));
                }
            }
        slots[0] = nb * bs;
        EXPECT_CHECK_FAILS(backend->write_kv_cache(p));
      }
    }
  }
}

OP_TEST(copy_blocks, every_layer_k_and_v) {
  auto backend = make_backend(3);
  Rng rng(21);
  const int64_t layers = 3, heads = 2, bs = 4, d = 8, nb = 7;
  for (DType dt : {DType::kFloat32, DType::kBFloat16}) {
    std::vector<Cache> caches, before;
    for (int64_t i = 0; i < 2 * layers; ++i) caches.emplace_back(dt, nb, heads, bs, d, rng);
    before = caches;
    std::vector<int64_t> k_ptrs, v_ptrs;
    for (int64_t l = 0; l < layers; ++l) {
      k_ptrs.push_back(reinterpret_cast<int64_t>(caches[2 * l].tensor().data));
      v_ptrs.push_back(reinterpret_cast<int64_t>(caches[2 * l + 1].tensor().data));
    }
    // Sources 0, 0, 5 (one block copied twice) to destinations 3, 6, 1.
    std::vector<int64_t> pairs = {0, 3, 0, 6, 5, 1};
    pagedllm::CopyBlocksParams p;
    p.key_caches = Tensor::contiguous(k_ptrs.data(), DType::kInt64, {layers});
    p.value_caches = Tensor::contiguous(v_ptrs.data(), DType::kInt64, {layers});
    p.block_mapping = Tensor::contiguous(pairs.data(), DType::kInt64, {3, 2});
    p.num_blocks = nb;
    p.block_bytes = heads * bs * d * static_cast<int64_t>(pagedllm::dtype_size(dt));
    backend->copy_blocks(p);
    int bad = 0;
    for (int64_t c = 0; c < 2 * layers; ++c)
      for (int64_t blk = 0; blk < nb; ++blk) {
        int64_t src = blk;
        for (size_t n = 0; n < pairs.size(); n += 2)
          if (pairs[n + 1] == blk) src = pairs[n];
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t off = 0; off < bs; ++off)
            for (int64_t i = 0; i < d; ++i)
              if (bits_of(caches[c].at(blk, h, off, i)) != bits_of(before[c].at(src, h, off, i)) && bad++ < 5)
                PAGEDLLM_TEST_FAIL_(false, std::string(dname(dt)) + " cache " + std::to_string(c) + " block " +
                                               std::to_string(blk));
      }
    p.block_mapping = Tensor::contiguous(pairs.data(), DType::kInt64, {0, 2});
    backend->copy_blocks(p);  // no pairs: a no-op
    pairs[3] = nb;
    p.block_mapping = Tensor::contiguous(pairs.data(), DType::kInt64, {3, 2});
    EXPECT_CHECK_FAILS(backend->copy_blocks(p));
  }
}

struct SeqSpec {
  int32_t q_len, seq_len;
};

struct AttnCase {
  int64_t group, d, block_size;
  DType dtype;
  std::vector<SeqSpec> seqs;
};

// Runs paged_attention on a random instance of c; returns the output [T, Hq, D] (token stride
// ldo) and checks it against the double-precision reference.
std::vector<float> run_attention(Backend* backend, Isa isa, const AttnCase& c, uint32_t seed) {
  Rng rng(seed);
  const int64_t hkv = 2, hq = hkv * c.group, d = c.d, bs = c.block_size;
  const int64_t b = static_cast<int64_t>(c.seqs.size());
  std::vector<int32_t> qsl(1, 0), lens;
  int64_t max_blocks = 0, total_blocks = 0;
  for (const SeqSpec& s : c.seqs) {
    qsl.push_back(qsl.back() + s.q_len);
    lens.push_back(s.seq_len);
    max_blocks = std::max<int64_t>(max_blocks, (s.seq_len + bs - 1) / bs);
    total_blocks += (s.seq_len + bs - 1) / bs;
  }
  const int64_t t = qsl.back(), nb = total_blocks + 3, width = max_blocks + 2;
  std::vector<int32_t> phys(nb);
  std::iota(phys.begin(), phys.end(), 0);
  std::shuffle(phys.begin(), phys.end(), rng.gen);
  std::vector<int32_t> table(b * width, 1 << 30);  // unused entries are out of range
  int64_t next = 0;
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < (lens[i] + bs - 1) / bs; ++j) table[i * width + j] = phys[next++];
  Cache kc(c.dtype, nb, hkv, bs, d, rng, true), vc(c.dtype, nb, hkv, bs, d, rng);
  const int64_t ldq = hq * d + 16, ldo = hq * d + 8;
  std::vector<float> q = rng.floats(t * ldq, -2.0f, 2.0f);
  std::vector<float> out(t * ldo, kNaN);
  pagedllm::PagedAttentionParams p;
  p.q = Tensor::contiguous(q.data(), DType::kFloat32, {t, hq, d});
  p.q.stride[0] = ldq;
  p.out = Tensor::contiguous(out.data(), DType::kFloat32, {t, hq, d});
  p.out.stride[0] = ldo;
  p.k_cache = kc.tensor();
  p.v_cache = vc.tensor();
  p.block_tables = Tensor::contiguous(table.data(), DType::kInt32, {b, width});
  p.query_start_loc = Tensor::contiguous(qsl.data(), DType::kInt32, {b + 1});
  p.seq_lens = Tensor::contiguous(lens.data(), DType::kInt32, {b});
  p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  backend->paged_attention(p);

  std::vector<double> want(t * hq * d);
  for (int64_t s = 0; s < b; ++s) {
    int64_t q_len = qsl[s + 1] - qsl[s];
    for (int64_t i = 0; i < q_len; ++i) {
      int64_t tok = qsl[s] + i, pos = lens[s] - q_len + i;
      for (int64_t h = 0; h < hq; ++h) {
        int64_t g = h / c.group;
        std::vector<double> score(pos + 1);
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j <= pos; ++j) {
          int64_t blk = table[s * width + j / bs];
          double dot = 0;
          for (int64_t e = 0; e < d; ++e) dot += static_cast<double>(q[tok * ldq + h * d + e]) * kc.at(blk, g, j % bs, e);
          score[j] = dot * p.scale;
          mx = std::max(mx, score[j]);
        }
        for (double& v : score) sum += (v = std::exp(v - mx));
        for (int64_t e = 0; e < d; ++e) {
          double acc = 0;
          for (int64_t j = 0; j <= pos; ++j) acc += score[j] * vc.at(table[s * width + j / bs], g, j % bs, e);
          want[(tok * hq + h) * d + e] = acc / sum;
        }
      }
    }
  }
  std::string what = tag(isa, dname(c.dtype)) + " G=" + std::to_string(c.group) +
                     " D=" + std::to_string(d) + " bs=" + std::to_string(bs);
  expect_close(out, ldo, want, hq * d, uniform_tol(want.size(), 3e-5), what);
  return out;
}

std::vector<AttnCase> attention_cases() {
  std::vector<SeqSpec> mixed = {{1, 37}, {20, 53}, {40, 40}, {1, 1}, {70, 100}, {1, 1300}, {3, 17}};
  std::vector<AttnCase> cases;
  for (int64_t group : {1, 2, 4})
    for (int64_t d : {64, 128})
      for (DType dt : {DType::kFloat32, DType::kBFloat16}) cases.push_back({group, d, 16, dt, mixed});
  // Few units over long contexts: splits run as separate tasks.
  cases.push_back({4, 128, 16, DType::kBFloat16, {{1, 2000}}});
  cases.push_back({2, 64, 16, DType::kFloat32, {{5, 1500}, {1, 700}}});
  // Odd block size and a head_dim that leaves vector tails.
  cases.push_back({2, 80, 5, DType::kFloat32, {{1, 23}, {9, 31}, {12, 12}}});
  cases.push_back({1, 96, 8, DType::kBFloat16, {{4, 600}, {1, 9}}});
  // Groups that fill P.V head tiles and leave a remainder, with a vector tail.
  cases.push_back({6, 72, 16, DType::kBFloat16, {{1, 90}, {7, 70}, {1, 1}}});
  cases.push_back({8, 64, 8, DType::kFloat32, {{1, 130}, {3, 3}}});
  // Blocks of two key vectors, and blocks larger than a softmax chunk.
  cases.push_back({4, 64, 32, DType::kBFloat16, {{1, 70}, {33, 97}, {1, 1}}});
  cases.push_back({2, 64, 128, DType::kFloat32, {{1, 300}, {130, 260}, {2, 2}}});
  return cases;
}

OP_TEST(paged_attention, mixed_batches) {
  auto backend = make_backend(3);
  uint32_t seed = 100;
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    for (const AttnCase& c : attention_cases()) run_attention(backend.get(), isa, c, seed++);
  }
}

// One query row of a sequence (position 299 of 300) computed three ways: as a lone decode, as a
// decode among other sequences (which changes the work split and the units around it), and as
// the last row of a 37-row prefill tile (other QK tiles, the split widened to float32 once):
// the output is bitwise the same, per ISA tier and cache dtype.
OP_TEST(paged_attention, row_does_not_depend_on_batch_or_tile) {
  auto backend = make_backend(3);
  const int64_t hkv = 2, group = 4, hq = hkv * group, d = 64, bs = 16, nb = 80;
  const int32_t len_a = 300;
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    for (DType dt : {DType::kFloat32, DType::kBFloat16}) {
      Rng rng(31);
      Cache kc(dt, nb, hkv, bs, d, rng, true), vc(dt, nb, hkv, bs, d, rng);
      std::vector<float> qa = rng.floats(37 * hq * d, -2.0f, 2.0f);  // rows 263..299 of A
      auto run = [&](const std::vector<SeqSpec>& seqs, int64_t a_index) {
        const int64_t b = static_cast<int64_t>(seqs.size()), width = 50;
        std::vector<int32_t> qsl(1, 0), lens, table(b * width, 0);
        for (int64_t i = 0; i < b; ++i) {
          qsl.push_back(qsl.back() + seqs[i].q_len);
          lens.push_back(seqs[i].seq_len);
          for (int64_t j = 0; j < width; ++j)  // a function of the sequence, not of its index
            table[i * width + j] = static_cast<int32_t>((j * 7 + 3 * seqs[i].seq_len) % nb);
        }
        std::vector<float> q = rng.floats(qsl.back() * hq * d, -2.0f, 2.0f);
        const int64_t a_rows = seqs[a_index].q_len;
        std::copy(qa.end() - a_rows * hq * d, qa.end(), q.begin() + qsl[a_index] * hq * d);
        std::vector<float> out(q.size(), kNaN);
        pagedllm::PagedAttentionParams p;
        p.q = Tensor::contiguous(q.data(), DType::kFloat32, {qsl.back(), hq, d});
        p.out = Tensor::contiguous(out.data(), DType::kFloat32, {qsl.back(), hq, d});
        p.k_cache = kc.tensor();
        p.v_cache = vc.tensor();
        p.block_tables = Tensor::contiguous(table.data(), DType::kInt32, {b, width});
        p.query_start_loc = Tensor::contiguous(qsl.data(), DType::kInt32, {b + 1});
        p.seq_lens = Tensor::contiguous(lens.data(), DType::kInt32, {b});
        p.scale = 0.125f;
        backend->paged_attention(p);
        const int64_t row = qsl[a_index + 1] - 1;
        return std::vector<float>(out.begin() + row * hq * d, out.begin() + (row + 1) * hq * d);
      };
      std::vector<float> alone = run({{1, len_a}}, 0);
      std::vector<float> batched = run({{5, 40}, {1, len_a}, {1, 700}, {3, 3}}, 1);
      std::vector<float> tiled = run({{37, len_a}}, 0);
      for (const std::vector<float>* other : {&batched, &tiled}) {
        bool same = std::memcmp(alone.data(), other->data(), alone.size() * sizeof(float)) == 0;
        if (!same)
          PAGEDLLM_TEST_FAIL_(false, tag(isa, dname(dt)) + (other == &batched ? " batched" : " prefill tile") +
                                         " row differs from the lone decode");
      }
    }
  }
}

// ---------------------------------------------------------------- threads

TEST(ThreadPool, parallel_for_covers_each_index_once) {
  for (int threads : {1, 2, 3, 5, 8}) {
    pagedllm::ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 7, 100, 1001}) {
      for (int64_t min_chunk : {1, 3, 64, 2000}) {
        std::unique_ptr<std::atomic<int>[]> hits(new std::atomic<int>[n + 1]);
        for (int64_t i = 0; i <= n; ++i) hits[i].store(0);
        std::atomic<int> tid_hits[8];
        for (auto& h : tid_hits) h.store(0);
        std::atomic<int> bad_chunks{0};
        pool.parallel_for(n, min_chunk, [&](int64_t b, int64_t e, int tid) {
          if (tid < 0 || tid >= threads || b >= e || (e - b < min_chunk && e != n)) ++bad_chunks;
          if (tid >= 0 && tid < 8) ++tid_hits[tid];
          for (int64_t i = b; i < e; ++i) ++hits[i];
        });
        EXPECT_EQ(bad_chunks.load(), 0);
        for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1);
        for (auto& h : tid_hits) EXPECT_LE(h.load(), 1);
      }
    }
  }
}

TEST(ThreadPool, rethrows_and_stays_usable) {
  pagedllm::ThreadPool pool(4);
  EXPECT_CHECK_FAILS(pool.parallel_for(100, 1, [](int64_t b, int64_t, int) {
    PAGEDLLM_CHECK(b != 75, "chunk at 75");
  }));
  std::atomic<int64_t> sum{0};
  for (int rep = 0; rep < 5000; ++rep)
    pool.parallel_for(4, 1, [&](int64_t b, int64_t e, int) { sum += e - b; });
  EXPECT_EQ(sum.load(), int64_t{20000});
}

TEST(CpuKernels, results_do_not_depend_on_thread_count) {
  auto one = make_backend(1);
  auto many = make_backend(4);
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    for (DType wdt : {DType::kFloat32, DType::kBFloat16})
      for (const LinearCase& lc : {LinearCase{3, 300, 200, false}, LinearCase{40, 300, 200, true}}) {
        Rng r1(11), r2(11);
        std::vector<float> a = run_linear(one.get(), isa, lc, wdt, true, r1);
        std::vector<float> b = run_linear(many.get(), isa, lc, wdt, true, r2);
        size_t diff = 0;
        for (size_t i = 0; i < a.size(); ++i) diff += bits_of(a[i]) != bits_of(b[i]) && !std::isnan(a[i]);
        EXPECT_EQ(diff, size_t{0});
        if (diff) std::cerr << "M=" << lc.m << " " << dname(wdt) << "\n";
      }
    std::vector<AttnCase> cases = attention_cases();
    for (size_t i = cases.size() - 4; i < cases.size(); ++i) {
      std::vector<float> a = run_attention(one.get(), isa, cases[i], 7);
      std::vector<float> b = run_attention(many.get(), isa, cases[i], 7);
      EXPECT_TRUE(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    }
  }
}

// ---------------------------------------------------------------- tensors, memory, upload

TEST(CpuBackend, tensor_views) {
  std::vector<float> buf(4 * 6);
  Tensor t = Tensor::contiguous(buf.data(), DType::kFloat32, {4, 6});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.stride[0], 6);
  EXPECT_TRUE(t.is_contiguous());
  Tensor rows = t.slice_rows(1, 3);
  EXPECT_EQ(rows.ptr<float>(), buf.data() + 6);
  EXPECT_EQ(rows.shape[0], 2);
  EXPECT_TRUE(rows.is_contiguous());
  Tensor cols = t.slice_cols(2, 5);
  EXPECT_EQ(cols.ptr<float>(), buf.data() + 2);
  EXPECT_EQ(cols.stride[0], 6);
  EXPECT_FALSE(cols.is_contiguous());
  Tensor v = t.view({2, 3, 4});
  EXPECT_EQ(v.stride[1], 4);
  EXPECT_EQ(v.nbytes(), size_t{96});
  EXPECT_CHECK_FAILS(t.view({5, 5}));
  EXPECT_CHECK_FAILS(cols.view({12}));
  EXPECT_CHECK_FAILS(t.slice_rows(3, 5));
  EXPECT_EQ(std::string(pagedllm::dtype_name(DType::kBFloat16)), "bfloat16");
  EXPECT_EQ(pagedllm::dtype_size(DType::kInt64), size_t{8});
}

TEST(CpuBackend, memory_and_creation) {
  auto backend = make_backend(0);
  EXPECT_EQ(backend->name(), "cpu");
  EXPECT_TRUE(backend->activation_dtype(DType::kBFloat16) == DType::kFloat32);
  EXPECT_GT(backend->default_kv_cache_bytes(), size_t{0});
  EXPECT_LE(backend->default_kv_cache_bytes(), size_t{8} << 30);
  pagedllm::Buffer a = backend->allocate_buffer(1000);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % 64, uintptr_t{0});
  const unsigned char* bytes = static_cast<const unsigned char*>(a.data());
  EXPECT_TRUE(std::all_of(bytes, bytes + 1000, [](unsigned char c) { return c == 0; }));
  pagedllm::Buffer b = std::move(a);
  EXPECT_TRUE(a.data() == nullptr);
  EXPECT_EQ(b.nbytes(), size_t{1000});
  EXPECT_EQ(b.as_tensor(DType::kFloat32, {250}).numel(), 250);
  EXPECT_CHECK_FAILS(b.as_tensor(DType::kFloat32, {251}));
}

TEST(CpuBackend, upload_weight_conversions) {
  auto backend = make_backend(2);
  Rng rng(12);
  std::vector<float> f = rng.floats(3000, -1e3f, 1e3f);
  f[0] = kNaN;
  f[1] = -std::numeric_limits<float>::infinity();
  f[2] = float_of(0x3f808000u);  // tie between 0x3f80 and 0x3f81: to even
  f[3] = float_of(0x3f818000u);  // tie between 0x3f81 and 0x3f82: to even
  f[4] = 1e-40f;                 // subnormal
  Tensor src = Tensor::contiguous(f.data(), DType::kFloat32, {30, 100});
  pagedllm::Buffer storage;
  Tensor same = backend->upload_weight(src, DType::kFloat32, &storage);
  EXPECT_TRUE(same.data == src.data);
  Tensor bf = backend->upload_weight(src, DType::kBFloat16, &storage);
  ASSERT_TRUE(bf.dtype == DType::kBFloat16 && bf.shape[0] == 30 && bf.shape[1] == 100);
  EXPECT_TRUE(std::isnan(bf16_value(bf.ptr<uint16_t>()[0])));
  for (size_t i = 1; i < f.size(); ++i) EXPECT_EQ(bf.ptr<uint16_t>()[i], ref_bf16(f[i]));
  pagedllm::Buffer back_storage;
  Tensor back = backend->upload_weight(bf, DType::kFloat32, &back_storage);
  for (size_t i = 1; i < f.size(); ++i) EXPECT_EQ(back.ptr<float>()[i], bf16_value(ref_bf16(f[i])));
  // float16 bit patterns and their values.
  std::vector<uint16_t> h = {0x3c00, 0xc000, 0x0001, 0x03ff, 0x7bff, 0x7c00, 0x3555, 0x8000, 0x7e00};
  std::vector<float> hv = {1.0f, -2.0f, std::ldexp(1.0f, -24), std::ldexp(1023.0f, -24), 65504.0f,
                           std::numeric_limits<float>::infinity(), 0.333251953125f, -0.0f};
  Tensor hs = Tensor::contiguous(h.data(), DType::kFloat16, {9});
  pagedllm::Buffer hstore, hbstore;
  Tensor hf = backend->upload_weight(hs, DType::kFloat32, &hstore);
  for (size_t i = 0; i < hv.size(); ++i) EXPECT_EQ(bits_of(hf.ptr<float>()[i]), bits_of(hv[i]));
  EXPECT_TRUE(std::isnan(hf.ptr<float>()[8]));
  Tensor hb = backend->upload_weight(hs, DType::kBFloat16, &hbstore);
  for (size_t i = 0; i < hv.size(); ++i) EXPECT_EQ(hb.ptr<uint16_t>()[i], ref_bf16(hv[i]));
}

// The CPU samples on the host (sample/sampler.h): no device sampling, and sample() refuses.
OP_TEST(sample, cpu_samples_on_the_host) {
  auto backend = make_backend(1);
  EXPECT_FALSE(backend->supports_device_sampling());
  EXPECT_CHECK_FAILS(backend->sample(pagedllm::SampleParams()));
}

// ---------------------------------------------------------------- coverage

TEST(CpuKernels, every_backend_op_has_a_case) {
  std::string path = __FILE__;
  path = path.substr(0, path.rfind("tests/cpp/")) + "cpp/src/backend/backend.h";
  std::ifstream in(path);
  ASSERT_TRUE(in.good());
  std::set<std::string> declared;
  std::string line;
  while (std::getline(in, line)) {
    size_t v = line.find("virtual void ");
    if (v == std::string::npos || line.find("Params& p)") == std::string::npos) continue;
    size_t begin = v + std::string("virtual void ").size();
    declared.insert(line.substr(begin, line.find('(', begin) - begin));
  }
  EXPECT_EQ(declared.size(), size_t{11});
  for (const std::string& op : declared)
    if (!covered_ops().count(op)) PAGEDLLM_TEST_FAIL_(false, "backend op without a test: " + op);
}

}  // namespace
