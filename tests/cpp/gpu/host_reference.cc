// Host references of the GPU ops (see host_reference.h): straight loops, double math.
#include "host_reference.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gpu_test.h"

namespace pagedllm_test {
namespace ref {

using pagedllm::DType;
using pagedllm::Tensor;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

int64_t load_index(const Tensor& t, int64_t i) {
  return t.dtype == DType::kInt64 ? t.ptr<int64_t>()[i * t.stride[0]] : t.ptr<int32_t>()[i * t.stride[0]];
}

// out[i] = in[i] / sqrt(mean(in^2) + eps) * w[i] over n elements; in and out may alias.
void rms_row(const Tensor& in, int64_t in_off, int64_t in_step, const Tensor& out, int64_t out_off,
             int64_t out_step, const Tensor& w, int64_t n, double eps) {
  std::vector<double> v(static_cast<size_t>(n));
  double sumsq = 0;
  for (int64_t i = 0; i < n; ++i) {
    v[i] = load(in, in_off + i * in_step);
    sumsq += v[i] * v[i];
  }
  const double inv = 1.0 / std::sqrt(sumsq / static_cast<double>(n) + eps);
  for (int64_t i = 0; i < n; ++i) store(out, out_off + i * out_step, v[i] * inv * load(w, i * w.stride[0]));
}

void rotate(const Tensor& x, const Tensor& cache, int64_t t, int64_t pos, bool valid) {
  const int64_t half = x.shape[2] / 2;
  for (int64_t h = 0; h < x.shape[1]; ++h) {
    const int64_t base = t * x.stride[0] + h * x.stride[1];
    for (int64_t i = 0; i < half; ++i) {
      const int64_t o1 = base + i * x.stride[2], o2 = base + (i + half) * x.stride[2];
      if (!valid) {
        store(x, o1, kNaN);
        store(x, o2, kNaN);
        continue;
      }
      const double c = load(cache, pos * cache.stride[0] + i * cache.stride[1]);
      const double s = load(cache, pos * cache.stride[0] + (i + half) * cache.stride[1]);
      const double x1 = load(x, o1), x2 = load(x, o2);
      store(x, o1, x1 * c - x2 * s);
      store(x, o2, x2 * c + x1 * s);
    }
  }
}

}  // namespace

double load(const Tensor& t, int64_t off) {
  switch (t.dtype) {
    case DType::kFloat32: return t.ptr<float>()[off];
    case DType::kBFloat16: return bf16_bits_to_float(t.ptr<uint16_t>()[off]);
    case DType::kFloat16: return half_bits_to_float(t.ptr<uint16_t>()[off]);
    case DType::kInt32: return t.ptr<int32_t>()[off];
    case DType::kInt64: return static_cast<double>(t.ptr<int64_t>()[off]);
  }
  return kNaN;
}

void store(const Tensor& t, int64_t off, double v) {
  const auto f = static_cast<float>(v);
  switch (t.dtype) {
    case DType::kFloat32: t.ptr<float>()[off] = f; break;
    case DType::kBFloat16: t.ptr<uint16_t>()[off] = float_to_bf16_bits(f); break;
    case DType::kFloat16: t.ptr<uint16_t>()[off] = float_to_half_bits(f); break;
    case DType::kInt32: t.ptr<int32_t>()[off] = static_cast<int32_t>(v); break;
    case DType::kInt64: t.ptr<int64_t>()[off] = static_cast<int64_t>(v); break;
  }
}

void embedding(const pagedllm::EmbeddingParams& p) {
  const int64_t vocab = p.table.shape[0], hidden = p.table.shape[1];
  for (int64_t t = 0; t < p.token_ids.shape[0]; ++t) {
    const int64_t id = load_index(p.token_ids, t);
    const bool valid = id >= 0 && id < vocab;
    for (int64_t i = 0; i < hidden; ++i)
      store(p.out, t * p.out.stride[0] + i * p.out.stride[1],
            valid ? load(p.table, id * p.table.stride[0] + i * p.table.stride[1]) : kNaN);
  }
}

void rms_norm(const pagedllm::RmsNormParams& p) {
  const int64_t hidden = p.x.shape[1];
  for (int64_t r = 0; r < p.x.shape[0]; ++r) {
    if (p.residual.data == nullptr) {
      rms_row(p.x, r * p.x.stride[0], p.x.stride[1], p.out, r * p.out.stride[0], p.out.stride[1], p.weight, hidden,
              p.eps);
      continue;
    }
    for (int64_t i = 0; i < hidden; ++i) {
      const int64_t ro = r * p.residual.stride[0] + i * p.residual.stride[1];
      store(p.residual, ro, load(p.residual, ro) + load(p.x, r * p.x.stride[0] + i * p.x.stride[1]));
    }
    rms_row(p.residual, r * p.residual.stride[0], p.residual.stride[1], p.out, r * p.out.stride[0], p.out.stride[1],
            p.weight, hidden, p.eps);
  }
}

void head_rms_norm(const pagedllm::HeadRmsNormParams& p) {
  for (int64_t t = 0; t < p.x.shape[0]; ++t)
    for (int64_t h = 0; h < p.x.shape[1]; ++h) {
      const int64_t off = t * p.x.stride[0] + h * p.x.stride[1];
      rms_row(p.x, off, p.x.stride[2], p.x, off, p.x.stride[2], p.weight, p.x.shape[2], p.eps);
    }
}

void rotary_embedding(const pagedllm::RotaryParams& p) {
  for (int64_t t = 0; t < p.positions.shape[0]; ++t) {
    const int64_t pos = load_index(p.positions, t);
    const bool valid = pos >= 0 && pos < p.cos_sin_cache.shape[0];
    rotate(p.q, p.cos_sin_cache, t, pos, valid);
    rotate(p.k, p.cos_sin_cache, t, pos, valid);
  }
}

void silu_and_mul(const pagedllm::SiluAndMulParams& p) {
  const int64_t inter = p.out.shape[1];
  for (int64_t t = 0; t < p.out.shape[0]; ++t)
    for (int64_t i = 0; i < inter; ++i) {
      const double gate = load(p.x, t * p.x.stride[0] + i * p.x.stride[1]);
      const double up = load(p.x, t * p.x.stride[0] + (inter + i) * p.x.stride[1]);
      store(p.out, t * p.out.stride[0] + i * p.out.stride[1], gate / (1.0 + std::exp(-gate)) * up);
    }
}

void write_kv_cache(const pagedllm::WriteKvCacheParams& p) {
  const int64_t heads = p.k_cache.shape[1], block_size = p.k_cache.shape[2], d = p.k_cache.shape[3];
  const int64_t num_slots = p.k_cache.shape[0] * block_size;
  for (int64_t t = 0; t < p.slot_mapping.shape[0]; ++t) {
    const int64_t slot = load_index(p.slot_mapping, t);
    if (slot < 0 || slot >= num_slots) continue;
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < d; ++i) {
        const int64_t c = (slot / block_size) * p.k_cache.stride[0] + h * p.k_cache.stride[1] +
                          (slot % block_size) * p.k_cache.stride[2] + i * p.k_cache.stride[3];
        store(p.k_cache, c, load(p.k, t * p.k.stride[0] + h * p.k.stride[1] + i * p.k.stride[2]));
        store(p.v_cache, c, load(p.v, t * p.v.stride[0] + h * p.v.stride[1] + i * p.v.stride[2]));
      }
  }
}

void gather_rows(const pagedllm::GatherRowsParams& p) {
  const size_t elem = pagedllm::dtype_size(p.x.dtype);
  const int64_t rows = p.x.shape[0], hidden = p.x.shape[1];
  for (int64_t r = 0; r < p.indices.shape[0]; ++r) {
    const int64_t src = load_index(p.indices, r);
    for (int64_t i = 0; i < hidden; ++i) {
      auto* dst = static_cast<unsigned char*>(p.out.data) + (r * p.out.stride[0] + i * p.out.stride[1]) * elem;
      if (src < 0 || src >= rows) {
        std::memset(dst, 0xff, elem);
      } else {
        std::memcpy(dst, static_cast<const unsigned char*>(p.x.data) + (src * p.x.stride[0] + i * p.x.stride[1]) * elem,
                    elem);
      }
    }
  }
}

void copy_blocks(const pagedllm::CopyBlocksParams& p) {
  for (const Tensor* caches : {&p.key_caches, &p.value_caches})
    for (int64_t l = 0; l < caches->shape[0]; ++l) {
      auto* base = reinterpret_cast<unsigned char*>(caches->ptr<int64_t>()[l]);
      for (int64_t n = 0; n < p.block_mapping.shape[0]; ++n) {
        const int64_t src = p.block_mapping.ptr<int64_t>()[2 * n], dst = p.block_mapping.ptr<int64_t>()[2 * n + 1];
        if (src < 0 || src >= p.num_blocks || dst < 0 || dst >= p.num_blocks) continue;
        std::memcpy(base + dst * p.block_bytes, base + src * p.block_bytes, static_cast<size_t>(p.block_bytes));
      }
    }
}

void convert(const pagedllm::ConvertParams& p) {
  for (int64_t i = 0; i < p.src.numel(); ++i) store(p.dst, i, load(p.src, i));
}

}  // namespace ref
}  // namespace pagedllm_test
