// CPU backend tests: every op of backend.h against a naive double-precision reference written
// here (seeded random inputs, NaN-poisoned outputs, strided views), under every ISA tier this
// machine supports (the KV cache and attention ops: test_cpu_attention.cc); the thread pool;
// tensors, buffers and weight upload.
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
#include "cpu_op_test_util.h"
#include "cpu_test_util.h"
#include "test_harness.h"
#include "util/check.h"
#include "util/thread_pool.h"

namespace {

using namespace cpu_op_test;

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
