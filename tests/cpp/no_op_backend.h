// NoOpModelBackend: a Backend whose model ops do nothing, for tests of host-side machinery
// (KV sizing, device sampling) through a fake device that overrides only what it exercises.
#pragma once

#include "backend/backend.h"

namespace pagedllm {

class NoOpModelBackend : public Backend {
 public:
  void embedding(const EmbeddingParams&) override {}
  void rms_norm(const RmsNormParams&) override {}
  void head_rms_norm(const HeadRmsNormParams&) override {}
  void linear(const LinearParams&) override {}
  void rotary_embedding(const RotaryParams&) override {}
  void silu_and_mul(const SiluAndMulParams&) override {}
  void write_kv_cache(const WriteKvCacheParams&) override {}
  void paged_attention(const PagedAttentionParams&) override {}
  void gather_rows(const GatherRowsParams&) override {}
  void copy_blocks(const CopyBlocksParams&) override {}
};

}  // namespace pagedllm
