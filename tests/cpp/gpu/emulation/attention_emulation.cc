// The native paged-attention launcher run on the CPU emulation of gpu_compat.cuh (see
// run_attention_emulation.sh) against a double reference: decode (with and without the split-K
// workspace, graph-style grid over max_model_len, padded rows), GQA groups 1..32, head dims 16..256,
// block sizes 1/8/16/32, prefill and mixed batches; float32 and bfloat16 storage.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>
#include "kernels/paged_attention.cuh"
#include "kernels/dtype.cuh"
using namespace pagedllm;

template <typename T>
float ld(const T* p, int64_t i) {
  return to_float(p[i]);
}

static int failures = 0;

template <typename T>
void run(DType dt, int d, int hq, int hkv, int bs, std::vector<int> qlens, std::vector<int> lens, int max_seq_override,
         bool ws_on, uint64_t seed, int pad_rows = 0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> U(-1, 1);
  for (int r = 0; r < pad_rows; ++r) { qlens.push_back(1); lens.push_back(1); }
  int B = lens.size(), real = B - pad_rows;
  int maxlen = *std::max_element(lens.begin(), lens.end()), maxq = *std::max_element(qlens.begin(), qlens.end());
  int stride = (std::max(maxlen, max_seq_override) + bs - 1) / bs + 1;
  int need = 1;
  for (int b = 0; b < real; ++b) need += (lens[b] + bs - 1) / bs;
  int nb = need + 3;
  std::vector<int> ids(nb - 1); std::iota(ids.begin(), ids.end(), 1); std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<int32_t> tables(B * stride, 0), qsl(B + 1, 0), sl(lens.begin(), lens.end());
  size_t nx = 0;
  for (int b = 0; b < B; ++b) { qsl[b + 1] = qsl[b] + qlens[b]; if (b < real) for (int j = 0; j < (lens[b] + bs - 1) / bs; ++j) tables[b * stride + j] = ids[nx++]; }
  int T_ = qsl[B];
  int64_t qs_tok = (hq + 2 * hkv) * d;
  std::vector<T> q(T_ * qs_tok), kc((size_t)nb * hkv * bs * d), vc(kc.size()), out((size_t)T_ * hq * d);
  for (auto& x : q) x = from_float<T>(2 * U(rng));
  for (auto& x : kc) x = from_float<T>(U(rng));
  for (auto& x : vc) x = from_float<T>(U(rng));
  for (auto& x : out) x = from_float<T>(NAN);
  PagedAttentionParams p;
  p.q.data = q.data(); p.q.dtype = dt; p.q.ndim = 3; p.q.shape[0] = T_; p.q.shape[1] = hq; p.q.shape[2] = d; p.q.stride[0] = qs_tok; p.q.stride[1] = d; p.q.stride[2] = 1;
  p.out = Tensor::contiguous(out.data(), dt, {T_, hq, d});
  p.k_cache = Tensor::contiguous(kc.data(), dt, {nb, hkv, bs, d});
  p.v_cache = Tensor::contiguous(vc.data(), dt, {nb, hkv, bs, d});
  p.block_tables = Tensor::contiguous(tables.data(), DType::kInt32, {B, stride});
  p.query_start_loc = Tensor::contiguous(qsl.data(), DType::kInt32, {B + 1});
  p.seq_lens = Tensor::contiguous(sl.data(), DType::kInt32, {B});
  p.scale = 3.0f / std::sqrt((float)d);
  p.max_query_len = maxq;
  p.max_seq_len = max_seq_override ? max_seq_override : maxlen;
  std::vector<float> ws;
  PagedAttentionWorkspace w;
  if (ws_on) { size_t n = paged_attention_workspace_bytes(B, hq, p.max_seq_len, d); ws.assign(n / 4, NAN); w = {ws.data(), n}; }
  launch_paged_attention(p, w, nullptr);
  int group = hq / hkv; double maxerr = 0; int bad = 0;
  for (int b = 0; b < B; ++b) {
    int ql = qsl[b + 1] - qsl[b];
    for (int i = 0; i < ql; ++i) {
      int t = qsl[b] + i, pos = lens[b] - ql + i;
      for (int h = 0; h < hq; ++h) {
        int g = h / group;
        std::vector<double> s(pos + 1); double mx = -INFINITY;
        for (int j = 0; j <= pos; ++j) {
          int64_t off = (((int64_t)tables[b * stride + j / bs] * hkv + g) * bs + j % bs) * d; double a = 0;
          for (int e = 0; e < d; ++e) a += (double)ld(q.data(), t * qs_tok + h * d + e) * ld(kc.data(), off + e);
          s[j] = a * p.scale; mx = std::max(mx, s[j]);
        }
        double sum = 0; for (auto& x : s) sum += (x = std::exp(x - mx));
        for (int e = 0; e < d; ++e) {
          double o = 0;
          for (int j = 0; j <= pos; ++j) { int64_t off = (((int64_t)tables[b * stride + j / bs] * hkv + g) * bs + j % bs) * d; o += s[j] * ld(vc.data(), off + e); }
          o /= sum;
          double got = ld(out.data(), ((int64_t)t * hq + h) * d + e);
          double err = std::fabs(got - o);
          double tol = (dt == DType::kFloat32 ? 1e-4 : 1e-2) * (1 + std::fabs(o));
          if (!(err <= tol)) { if (bad < 3) printf("   mismatch b%d i%d h%d e%d got %g want %g\n", b, i, h, e, got, o); ++bad; }
          if (err > maxerr || std::isnan(err)) maxerr = err;
        }
      }
    }
  }
  printf("%s %s d%d hq%d hkv%d bs%d B%d maxq%d maxlen%d ws%d -> maxerr %.3g bad %d\n", bad ? "FAIL" : "ok  ", dtype_name(dt), d, hq, hkv, bs, B, maxq, maxlen, (int)ws_on, maxerr, bad);
  if (bad) ++failures;
}

int main() {
  // decode
  run<float>(DType::kFloat32, 64, 8, 2, 16, {1, 1, 1}, {1, 17, 200}, 0, true, 1);
  run<float>(DType::kFloat32, 128, 8, 1, 16, {1, 1}, {513, 1100}, 0, true, 2);
  run<float>(DType::kFloat32, 128, 8, 1, 16, {1, 1}, {513, 1100}, 0, false, 3);
  run<gpu_bfloat16>(DType::kBFloat16, 256, 4, 4, 16, {1, 1}, {70, 530}, 0, true, 4);
  run<gpu_bfloat16>(DType::kBFloat16, 16, 6, 2, 16, {1, 1, 1}, {5, 33, 130}, 0, true, 5);
  run<gpu_bfloat16>(DType::kBFloat16, 32, 16, 1, 8, {1, 1}, {5, 300}, 2048, true, 6, 3);
  run<float>(DType::kFloat32, 64, 32, 1, 16, {1, 1}, {3, 60}, 0, true, 7);  // group 32 -> prefill kernel
  run<float>(DType::kFloat32, 64, 4, 2, 1, {1, 1}, {3, 40}, 0, true, 8);
  run<float>(DType::kFloat32, 64, 4, 1, 16, {1, 0, 1}, {40, 7, 1700}, 0, true, 9);  // a row with q_len 0
  run<gpu_bfloat16>(DType::kBFloat16, 128, 8, 2, 16, {1, 1, 1}, {129, 2000, 4000}, 8192, true, 10);
  // prefill / mixed
  run<float>(DType::kFloat32, 64, 8, 2, 16, {37, 1, 20, 1}, {37, 100, 20, 9}, 0, true, 11);
  run<gpu_bfloat16>(DType::kBFloat16, 128, 4, 1, 16, {9, 1, 30}, {9, 50, 70}, 0, true, 12);
  run<gpu_bfloat16>(DType::kBFloat16, 256, 2, 1, 32, {20, 3}, {20, 40}, 0, true, 13);
  run<float>(DType::kFloat32, 256, 2, 2, 16, {18, 3}, {18, 40}, 0, true, 14);
  run<float>(DType::kFloat32, 16, 3, 1, 16, {33}, {80}, 0, true, 15);
  printf("%d failures\n", failures);
  return failures != 0;
}
