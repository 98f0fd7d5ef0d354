// CPU backend tests of the paged KV cache ops: write_kv_cache (K stored transposed per block),
// copy_blocks and paged_attention against a double-precision reference, under every ISA tier
// this machine supports, plus batch, tile and thread-count invariance of attention rows.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/isa.h"
#include "cpu_op_test_util.h"
#include "cpu_test_util.h"
#include "test_harness.h"
#include "util/check.h"

namespace {

using namespace cpu_op_test;

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

TEST(CpuKernels, attention_does_not_depend_on_thread_count) {
  auto one = make_backend(1);
  auto many = make_backend(4);
  for (Isa isa : supported_isas()) {
    IsaScope scope(isa);
    std::vector<AttnCase> cases = attention_cases();
    for (size_t i = cases.size() - 4; i < cases.size(); ++i) {
      std::vector<float> a = run_attention(one.get(), isa, cases[i], 7);
      std::vector<float> b = run_attention(many.get(), isa, cases[i], 7);
      EXPECT_TRUE(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    }
  }
}

}  // namespace
