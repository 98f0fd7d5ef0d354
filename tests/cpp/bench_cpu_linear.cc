// bench_cpu_linear: GFLOP/s of the CPU linear op on the small/medium benchmark models' shapes,
// unpacked ([N, K] weight) vs packed (Backend::pack_linear_weight), float32 and bfloat16
// weights, one thread by default. Usage: bench_cpu_linear [threads] [min_seconds_per_point]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace {

using pagedllm::Backend;
using pagedllm::Buffer;
using pagedllm::DType;
using pagedllm::Tensor;

struct Shape {
  const char* name;
  int64_t n, k;
};

double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median-free best-of: runs linear until min_s has passed, three times; returns the best rate.
double gflops(Backend* b, const pagedllm::LinearParams& p, double min_s) {
  const double flops = 2.0 * p.x.shape[0] * p.x.shape[1] * p.out.shape[1];
  double best = 0.0;
  for (int rep = 0; rep < 3; ++rep) {
    int iters = 0;
    double t0 = seconds_now(), t = t0;
    while (t - t0 < min_s) {
      b->linear(p);
      ++iters;
      t = seconds_now();
    }
    best = std::max(best, flops * iters / (t - t0) / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  double min_s = argc > 2 ? std::atof(argv[2]) : 0.1;
  std::string err;
  std::unique_ptr<Backend> b = pagedllm::create_backend("cpu", threads, &err);
  if (!b) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return 1;
  }
  const Shape shapes[] = {{"small qkv", 768, 512},      {"small o", 512, 512},
                          {"small gate_up", 2816, 512}, {"small down", 512, 1408},
                          {"small lm_head", 8192, 512}, {"medium qkv", 1536, 768},
                          {"medium gate_up", 4096, 768}, {"medium down", 768, 2048}};
  const int64_t ms[] = {1, 8, 32, 128, 512};
  std::mt19937 gen(0);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::printf("%-16s %-8s %5s %10s %10s %7s\n", "shape", "dtype", "M", "unpacked", "packed", "ratio");
  for (const Shape& s : shapes) {
    for (DType dt : {DType::kFloat32, DType::kBFloat16}) {
      std::vector<float> w32(s.n * s.k);
      for (float& v : w32) v = u(gen);
      Tensor w = Tensor::contiguous(w32.data(), DType::kFloat32, {s.n, s.k});
      Buffer conv, packed_storage;
      if (dt == DType::kBFloat16) w = b->upload_weight(w, dt, &conv);
      Tensor packed = b->pack_linear_weight({w}, &packed_storage);
      for (int64_t m : ms) {
        std::vector<float> x(m * s.k), out(m * s.n);
        for (float& v : x) v = u(gen);
        pagedllm::LinearParams p;
        p.x = Tensor::contiguous(x.data(), DType::kFloat32, {m, s.k});
        p.out = Tensor::contiguous(out.data(), DType::kFloat32, {m, s.n});
        p.weight = w;
        double a = gflops(b.get(), p, min_s);
        p.weight = packed;
        double c = gflops(b.get(), p, min_s);
        std::printf("%-16s %-8s %5lld %10.1f %10.1f %6.2fx\n", s.name, pagedllm::dtype_name(dt),
                    static_cast<long long>(m), a, c, c / a);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
