// Paged attention on the GPU (native kernels and, when compiled in, FlashInfer through
// GpuAttention) against a naive double-precision host reference: decode / prefill / mixed
// batches, GQA ratios 1, 4, 8, head dims 16..256, contexts crossing decode partitions, graph
// style launches (max_seq_len = max_model_len), padded decode rows, block sizes 8/16/32.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "attention_dispatch.cuh"
#include "gpu_test.h"
#include "host_reference.h"
#include "kernels/paged_attention.cuh"

namespace {

using pagedllm::DType;
using namespace pagedllm_test;

struct Batch {
  std::vector<int> q_lens, seq_lens;
};

// kAuto / kFlashInfer: through GpuAttention (plan + run) with attention_backend "auto" / "flashinfer".
enum class Path { kNativeNoWorkspace, kNative, kAuto, kFlashInfer };

struct Case {
  DType dtype = DType::kBFloat16;
  int head_dim = 128, num_q_heads = 8, num_kv_heads = 2, block_size = 16;
  Batch batch;
  int max_seq_len_override = 0;  // > 0: p.max_seq_len (graph-style launch over max_model_len)
  int padded_rows = 0;           // extra decode rows with seq_len 1 reading block 0
};

// out[t, h, :] of sequence b, query row i: softmax(scale * q k^T over positions <= pos) v.
void reference(const pagedllm::PagedAttentionParams& p, const std::vector<int>& qsl, const std::vector<int>& lens,
               const std::vector<int>& tables, int table_stride) {
  const int64_t hq = p.q.shape[1], d = p.q.shape[2], hkv = p.k_cache.shape[1], bs = p.k_cache.shape[2];
  const int64_t group = hq / hkv;
  for (size_t b = 0; b < lens.size(); ++b) {
    const int q_len = qsl[b + 1] - qsl[b];
    for (int i = 0; i < q_len; ++i) {
      const int64_t t = qsl[b] + i, pos = lens[b] - q_len + i;
      for (int64_t h = 0; h < hq; ++h) {
        const int64_t g = h / group;
        std::vector<double> s(pos + 1);
        double mx = -INFINITY;
        for (int64_t j = 0; j <= pos; ++j) {
          const int64_t blk = tables[b * table_stride + j / bs];
          const int64_t koff = ((blk * hkv + g) * bs + j % bs) * d;
          double acc = 0.0;
          for (int64_t e = 0; e < d; ++e)
            acc += ref::load(p.q, t * p.q.stride[0] + h * p.q.stride[1] + e) * ref::load(p.k_cache, koff + e);
          s[j] = acc * p.scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0.0;
        for (double& x : s) sum += (x = std::exp(x - mx));
        for (int64_t e = 0; e < d; ++e) {
          double o = 0.0;
          for (int64_t j = 0; j <= pos; ++j) {
            const int64_t blk = tables[b * table_stride + j / bs];
            o += s[j] * ref::load(p.v_cache, ((blk * hkv + g) * bs + j % bs) * d + e);
          }
          ref::store(p.out, t * p.out.stride[0] + h * p.out.stride[1] + e, o / sum);
        }
      }
    }
  }
}

Tolerance attention_tolerance(DType dtype) {
  if (dtype == DType::kFloat32) return {2e-4, 2e-5};
  if (dtype == DType::kFloat16) return {4e-3, 2e-3};
  return {1.6e-2, 8e-3};
}

TestTensor int_tensor(const std::vector<int>& v, std::initializer_list<int64_t> shape) {
  TestTensor t(DType::kInt32, shape);
  t.fill(std::vector<double>(v.begin(), v.end()));
  return t;
}

void run_case(const Case& c, Path path, uint64_t seed) {
  Rng rng(seed);
  std::vector<int> q_lens = c.batch.q_lens, lens = c.batch.seq_lens;
  for (int r = 0; r < c.padded_rows; ++r) {
    q_lens.push_back(1);
    lens.push_back(1);
  }
  const int num_seqs = static_cast<int>(lens.size()), bs = c.block_size, d = c.head_dim;
  const int max_len = *std::max_element(lens.begin(), lens.end());
  const int max_q = *std::max_element(q_lens.begin(), q_lens.end());
  const int table_stride = (std::max(max_len, c.max_seq_len_override) + bs - 1) / bs + 1;
  int needed = 1;  // block 0 is the padded rows' block
  for (int b = 0; b < c.batch.seq_lens.size(); ++b) needed += (lens[b] + bs - 1) / bs;
  const int num_blocks = needed + 3;
  std::vector<int> ids(num_blocks - 1);
  std::iota(ids.begin(), ids.end(), 1);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<int> tables(num_seqs * table_stride, 0), qsl(num_seqs + 1, 0);
  size_t next = 0;
  for (int b = 0; b < num_seqs; ++b) {
    qsl[b + 1] = qsl[b] + q_lens[b];
    if (b >= static_cast<int>(c.batch.seq_lens.size())) continue;
    for (int j = 0; j < (lens[b] + bs - 1) / bs; ++j) tables[b * table_stride + j] = ids[next++];
  }
  const int64_t tokens = qsl[num_seqs], hq = c.num_q_heads, hkv = c.num_kv_heads;

  TestTensor q(c.dtype, {tokens, hq, d}, {(hq + 2 * hkv) * d, d, 1});  // a fused-QKV view
  q.fill_random(rng, -2, 2);
  TestTensor k_cache(c.dtype, {num_blocks, hkv, bs, d});
  TestTensor v_cache(c.dtype, {num_blocks, hkv, bs, d});
  k_cache.fill_random(rng, -1, 1);
  v_cache.fill_random(rng, -1, 1);
  TestTensor out(c.dtype, {tokens, hq, d});
  TestTensor t_tables = int_tensor(tables, {num_seqs, table_stride});
  TestTensor t_qsl = int_tensor(qsl, {num_seqs + 1});
  TestTensor t_lens = int_tensor(lens, {num_seqs});

  pagedllm::PagedAttentionParams p;
  p.q = q.dev();
  p.k_cache = k_cache.dev();
  p.v_cache = v_cache.dev();
  p.block_tables = t_tables.dev();
  p.query_start_loc = t_qsl.dev();
  p.seq_lens = t_lens.dev();
  p.out = out.dev();
  p.scale = 3.0f / std::sqrt(static_cast<float>(d));
  p.max_query_len = max_q;
  p.max_seq_len = c.max_seq_len_override > 0 ? c.max_seq_len_override : max_len;

  void* ws = nullptr;
  if (path == Path::kNative) {
    const size_t bytes = pagedllm::paged_attention_workspace_bytes(num_seqs, hq, p.max_seq_len, d);
    ASSERT_TRUE(pagedllm::gpuMalloc(&ws, bytes) == pagedllm::gpuSuccess);
    pagedllm::launch_paged_attention(p, {ws, bytes}, gpu_stream());
  } else if (path == Path::kNativeNoWorkspace) {
    pagedllm::launch_paged_attention(p, {}, gpu_stream());
  } else {
    pagedllm::AttentionBackendKind kind;
    std::string error;
    ASSERT_TRUE(pagedllm::resolve_attention_backend(path == Path::kAuto ? "auto" : "flashinfer", &kind, &error));
    pagedllm::GpuAttention attention(kind);
    pagedllm::AttentionPlanInputs in;
    in.query_start_loc = qsl.data();
    in.seq_lens = lens.data();
    in.block_tables = tables.data();
    in.num_seqs = num_seqs;
    in.block_table_stride = table_stride;
    in.block_size = bs;
    in.num_q_heads = hq;
    in.num_kv_heads = hkv;
    in.head_dim = d;
    in.max_num_seqs = num_seqs;
    in.max_num_batched_tokens = tokens;
    in.max_model_len = table_stride * bs;
    attention.plan(in, gpu_stream());
    attention.run(p, gpu_stream());
    sync_device();
  }
  sync_device();
  if (ws != nullptr) pagedllm::gpuFree(ws);
  TestTensor got = out.fetch();
  pagedllm::PagedAttentionParams h = p;
  h.q = q.host();
  h.k_cache = k_cache.host();
  h.v_cache = v_cache.host();
  h.out = out.host();
  reference(h, qsl, lens, tables, table_stride);
  expect_close(got, out, attention_tolerance(c.dtype), "paged_attention out");
}

Batch decode_batch(std::vector<int> lens) { return {std::vector<int>(lens.size(), 1), lens}; }

GPU_OP_TEST(paged_attention, decode_dtypes_head_dims_gqa) {
  for (DType dtype : float_dtypes()) {
    for (int d : {64, 128, 256}) {
      for (int group : {1, 4, 8}) {
        Case c;
        c.dtype = dtype;
        c.head_dim = d;
        c.num_kv_heads = 2;
        c.num_q_heads = 2 * group;
        c.batch = decode_batch({1, 17, 200, 513});
        run_case(c, Path::kNative, 11 + d + group);
      }
    }
  }
}

GPU_OP_TEST(paged_attention, decode_small_head_dims_and_odd_groups) {
  for (int d : {16, 32}) {
    for (int group : {2, 3, 6, 16}) {
      Case c;
      c.head_dim = d;
      c.num_kv_heads = 1;
      c.num_q_heads = group;
      c.batch = decode_batch({5, 33, 700});
      run_case(c, Path::kNative, 21 + d + group);
    }
  }
  Case wide;  // group 32: served by the tiled kernel
  wide.head_dim = 64;
  wide.num_kv_heads = 1;
  wide.num_q_heads = 32;
  wide.batch = decode_batch({3, 300});
  run_case(wide, Path::kNative, 29);
}

GPU_OP_TEST(paged_attention, decode_long_contexts_cross_partitions) {
  for (DType dtype : {DType::kBFloat16, DType::kFloat32}) {
    Case c;
    c.dtype = dtype;
    c.num_q_heads = 32;
    c.num_kv_heads = 8;
    c.batch = decode_batch({511, 512, 513, 1024, 1025, 3000});
    run_case(c, Path::kNative, 31);
    run_case(c, Path::kNativeNoWorkspace, 32);
  }
}

GPU_OP_TEST(paged_attention, decode_graph_style_grid_and_padded_rows) {
  Case c;
  c.num_q_heads = 16;
  c.num_kv_heads = 4;
  c.batch = decode_batch({7, 600, 2});
  c.max_seq_len_override = 4096;  // grid over max_model_len: blocks past each sequence exit
  c.padded_rows = 5;              // seq_len 1, block 0 (slot -1 was not written: any data)
  run_case(c, Path::kNative, 41);
  c.dtype = DType::kFloat16;
  run_case(c, Path::kNative, 42);
}

GPU_OP_TEST(paged_attention, block_sizes) {
  for (int bs : {1, 8, 32}) {
    Case c;
    c.block_size = bs;
    c.batch = decode_batch({1, 40, 520});
    run_case(c, Path::kNative, 51 + bs);
    c.batch = {{9, 1, 30}, {9, 50, 30}};
    run_case(c, Path::kNative, 61 + bs);
  }
}

GPU_OP_TEST(paged_attention, prefill_and_mixed) {
  for (DType dtype : float_dtypes()) {
    for (int d : {16, 64, 128, 256}) {
      for (int group : {1, 4, 8}) {
        Case c;
        c.dtype = dtype;
        c.head_dim = d;
        c.num_kv_heads = 2;
        c.num_q_heads = 2 * group;
        // full prompts, a chunk of a long prompt (q_len < seq_len), decodes, a prefix hit
        c.batch = {{37, 1, 100, 1, 5, 64}, {37, 300, 100, 1, 530, 64}};
        run_case(c, Path::kNative, 71 + d + group);
      }
    }
  }
}

GPU_OP_TEST(paged_attention, prefill_long_prompt) {
  Case c;
  c.num_q_heads = 32;
  c.num_kv_heads = 8;
  c.batch = {{700, 129}, {1200, 129}};
  run_case(c, Path::kNative, 81);
}

void dispatch_cases(Path path) {
  for (DType dtype : {DType::kBFloat16, DType::kFloat16, DType::kFloat32}) {
    for (int d : {64, 128, 256}) {
      Case c;
      c.dtype = dtype;
      c.head_dim = d;
      c.num_q_heads = 16;
      c.num_kv_heads = 4;
      c.batch = decode_batch({1, 17, 200, 1300});
      run_case(c, path, 91 + d);
      c.batch = {{37, 1, 100, 1, 5}, {37, 300, 100, 1, 530}};
      run_case(c, path, 92 + d);
      c.num_q_heads = 32;  // group 8
      c.batch = {{1, 1, 1}, {5, 800, 16}};
      run_case(c, path, 93 + d);
      c.num_q_heads = 20;  // group 5: no FlashInfer decode kernel, native
      c.batch = decode_batch({3, 600});
      run_case(c, path, 94 + d);
    }
  }
}

// FlashInfer where compiled in (bf16, fp16 when built, head dims 64/128/256), native otherwise;
// "auto" sends decode steps to the native kernels, "flashinfer" to FlashInfer's decode.
GPU_OP_TEST(paged_attention, gpu_attention_auto_matches_reference) { dispatch_cases(Path::kAuto); }

GPU_OP_TEST(paged_attention, gpu_attention_flashinfer_matches_reference) {
  if (pagedllm::flashinfer_compiled()) dispatch_cases(Path::kFlashInfer);
}

HOST_TEST(GpuChecks, paged_attention_rejects_bad_shapes) {
  alignas(16) float buf[4096] = {};
  int32_t ibuf[16] = {};
  pagedllm::PagedAttentionParams p;
  p.q = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 4, 64});
  p.out = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 4, 64});
  p.k_cache = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 3, 16, 64});  // 4 % 3 != 0
  p.v_cache = p.k_cache;
  p.block_tables = pagedllm::Tensor::contiguous(ibuf, DType::kInt32, {2, 1});
  p.query_start_loc = pagedllm::Tensor::contiguous(ibuf, DType::kInt32, {3});
  p.seq_lens = pagedllm::Tensor::contiguous(ibuf, DType::kInt32, {2});
  p.max_query_len = 1;
  p.max_seq_len = 1;
  EXPECT_CHECK_FAILS(pagedllm::launch_paged_attention(p, {}, nullptr));
  p.k_cache = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 2, 16, 48});  // D mismatch
  p.v_cache = p.k_cache;
  EXPECT_CHECK_FAILS(pagedllm::launch_paged_attention(p, {}, nullptr));
  p.k_cache = pagedllm::Tensor::contiguous(buf, DType::kBFloat16, {2, 2, 16, 64});  // dtype mismatch
  p.v_cache = p.k_cache;
  EXPECT_CHECK_FAILS(pagedllm::launch_paged_attention(p, {}, nullptr));
  p.k_cache = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 2, 16, 64});
  p.v_cache = p.k_cache;
  EXPECT_CHECK_FAILS(pagedllm::launch_paged_attention(p, {buf, 16}, nullptr));  // workspace too small
  p.q = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 4, 24});  // head_dim without a kernel
  p.out = p.q;
  p.k_cache = pagedllm::Tensor::contiguous(buf, DType::kFloat32, {2, 2, 16, 24});
  p.v_cache = p.k_cache;
  EXPECT_CHECK_FAILS(pagedllm::launch_paged_attention(p, {}, nullptr));
}

HOST_TEST(GpuChecks, attention_backend_names) {
  pagedllm::AttentionBackendKind kind;
  std::string error;
  EXPECT_TRUE(pagedllm::resolve_attention_backend("native", &kind, &error));
  EXPECT_TRUE(kind == pagedllm::AttentionBackendKind::kNative);
  EXPECT_TRUE(pagedllm::resolve_attention_backend("auto", &kind, &error));
  EXPECT_TRUE((kind == pagedllm::AttentionBackendKind::kFlashInferPrefill) == pagedllm::flashinfer_compiled());
  EXPECT_TRUE((kind == pagedllm::AttentionBackendKind::kNative) != pagedllm::flashinfer_compiled());
  EXPECT_EQ(pagedllm::resolve_attention_backend("flashinfer", &kind, &error), pagedllm::flashinfer_compiled());
  EXPECT_FALSE(pagedllm::resolve_attention_backend("flash", &kind, &error));
  EXPECT_TRUE(error.find("unknown attention_backend") != std::string::npos);
}

}  // namespace
