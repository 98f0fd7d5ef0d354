// bench_cpu_attention: time of one paged_attention call (best of N) on the small model's
// shapes (2 KV heads, group 4, head_dim 64, block 16, bfloat16 K/V), decode and prefill.
// Usage: bench_cpu_attention [threads]
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>
#include "backend/backend.h"
using namespace pagedllm;
// Best time in ms of paged_attention over b sequences of qlen query rows and ctx keys each.
double run(Backend* be, int b, int qlen, int ctx, int reps) {
  const int64_t hkv = 2, hq = 8, d = 64, bs = 16;  // group hq / hkv = 4
  int64_t bps = (ctx + bs - 1) / bs, nb = b * bps;
  std::mt19937 g(1);
  std::uniform_real_distribution<float> u(-2, 2);
  std::vector<uint16_t> kc(nb * hkv * bs * d), vc(kc.size());
  for (auto& x : kc) { float f = u(g); uint32_t bits; std::memcpy(&bits, &f, 4); x = bits >> 16; }
  for (auto& x : vc) { float f = u(g); uint32_t bits; std::memcpy(&bits, &f, 4); x = bits >> 16; }
  std::vector<int32_t> qsl(1, 0), lens, table(b * bps);
  for (int i = 0; i < b; ++i) { qsl.push_back(qsl.back() + qlen); lens.push_back(ctx); }
  for (int64_t i = 0; i < nb; ++i) table[i] = (i * 7919) % nb;
  int64_t t = qsl.back();
  std::vector<float> q(t * hq * d), out(t * hq * d);
  for (auto& x : q) x = u(g);
  PagedAttentionParams p;
  p.q = Tensor::contiguous(q.data(), DType::kFloat32, {t, hq, d});
  p.out = Tensor::contiguous(out.data(), DType::kFloat32, {t, hq, d});
  p.k_cache = Tensor::contiguous(kc.data(), DType::kBFloat16, {nb, hkv, bs, d});
  p.v_cache = Tensor::contiguous(vc.data(), DType::kBFloat16, {nb, hkv, bs, d});
  p.block_tables = Tensor::contiguous(table.data(), DType::kInt32, {b, bps});
  p.query_start_loc = Tensor::contiguous(qsl.data(), DType::kInt32, {b + 1});
  p.seq_lens = Tensor::contiguous(lens.data(), DType::kInt32, {b});
  p.scale = 0.125f;
  be->paged_attention(p);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    be->paged_attention(p);
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}
int main(int argc, char** argv) {
  std::string err;
  std::unique_ptr<Backend> be = create_backend("cpu", argc > 1 ? std::atoi(argv[1]) : 1, &err);
  if (!be) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return 1;
  }
  std::printf("decode b32 ctx256 %.3f ms\n", run(be.get(), 32, 1, 256, 200));
  std::printf("decode b32 ctx512 %.3f ms\n", run(be.get(), 32, 1, 512, 200));
  std::printf("prefill b1 512 rows %.3f ms\n", run(be.get(), 1, 512, 512, 20));
}
