// StepInputs: the flat inputs of one step, staged in one host buffer from
// Backend::allocate_host (page-locked on a GPU) and mirrored in one device buffer with the same
// fixed layout, so a step uploads with a single async copy and the device addresses never
// change (captured graphs read them on every replay).
//
// Layout (byte offsets fixed at construction, each 64-byte aligned); T = max_tokens,
// B = max_seqs, M = max_blocks_per_seq:
//   slot_mapping [T] int64 | input_ids [T] int32 | positions [T] int32 | logits_indices [T] int32
//   | query_start_loc [B + 1] int32 | seq_lens [B] int32 | block_tables [B, M] int32
// upload(num_seqs) copies the prefix up to the end of block-table row num_seqs - 1, which
// covers every array's used part. Invariant: the host buffer is written only after the
// previous upload has run (the runner ends every step with a copy_to_host, which waits).
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "model/llama.h"

namespace pagedllm {

class StepInputs {
 public:
  StepInputs(Backend* backend, int64_t max_tokens, int64_t max_seqs, int64_t max_blocks_per_seq);
  ~StepInputs();
  StepInputs(const StepInputs&) = delete;
  StepInputs& operator=(const StepInputs&) = delete;

  int64_t max_tokens() const { return max_tokens_; }
  int64_t max_seqs() const { return max_seqs_; }
  int64_t max_blocks_per_seq() const { return max_blocks_; }

  // Host staging arrays (see the layout above).
  int64_t* slot_mapping() { return host<int64_t>(off_slot_mapping_); }
  int32_t* input_ids() { return host<int32_t>(off_input_ids_); }
  int32_t* positions() { return host<int32_t>(off_positions_); }
  int32_t* logits_indices() { return host<int32_t>(off_logits_indices_); }
  int32_t* query_start_loc() { return host<int32_t>(off_query_start_loc_); }
  int32_t* seq_lens() { return host<int32_t>(off_seq_lens_); }
  int32_t* block_table(int64_t seq) { return host<int32_t>(off_block_tables_) + seq * max_blocks_; }

  // Fills rows [num_seqs, padded) of a decode step (one token per sequence) with dummy
  // sequences that write nothing and read valid memory: input id 0, position 0, slot -1,
  // seq_len 1, block table row of block 0, query_start_loc[b + 1] = b + 1, logits index b.
  // Precondition: rows [0, num_seqs) hold a decode step; padded <= max_seqs and <= max_tokens.
  void pad_decode(int64_t num_seqs, int64_t padded);

  // Enqueues the copy of the staged arrays of a step with num_seqs sequences to the device.
  void upload(int64_t num_seqs);

  // Device views of a step of num_tokens tokens, num_seqs sequences and num_logits logits
  // rows; max_query_len and max_seq_len are left for the caller.
  ForwardBatch device_batch(int64_t num_tokens, int64_t num_seqs, int64_t num_logits) const;

 private:
  template <typename T>
  T* host(size_t offset) {
    return reinterpret_cast<T*>(static_cast<char*>(host_) + offset);
  }
  Tensor device_tensor(size_t offset, DType dtype, int64_t n) const;

  Backend* backend_;
  int64_t max_tokens_, max_seqs_, max_blocks_;
  size_t off_slot_mapping_ = 0, off_input_ids_ = 0, off_positions_ = 0, off_logits_indices_ = 0;
  size_t off_query_start_loc_ = 0, off_seq_lens_ = 0, off_block_tables_ = 0, total_bytes_ = 0;
  void* host_ = nullptr;  // [total_bytes_] from allocate_host
  Buffer device_;         // [total_bytes_] same layout
};

}  // namespace pagedllm
