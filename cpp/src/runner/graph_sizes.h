// Which steps run as a replayed graph, and at which padded batch size. Pure host functions.
//
// Decode-only steps (every scheduled request computes exactly 1 token and the logits rows are
// the steps's rows in order) are captured per padded batch size at start-up; a step of B
// requests replays the graph of the smallest captured size P >= B with rows [B, P) padded
// (StepInputs::pad_decode). Mixed and prefill steps, and decode steps above the largest size,
// run eagerly.
#pragma once

#include <cstdint>
#include <vector>

#include "sched/scheduler.h"

namespace pagedllm {

// The sizes to capture, ascending and distinct. requested empty = the default 1, 2, 4, 8, then
// every 8 up to max_num_seqs, and max_num_seqs itself; requested sizes above max_num_seqs or
// below 1 are dropped.
std::vector<int64_t> graph_capture_sizes(const std::vector<int64_t>& requested, int64_t max_num_seqs);

// The smallest of `sizes` (ascending) that holds num_seqs, or -1 when none does.
int64_t graph_padded_size(const std::vector<int64_t>& sizes, int64_t num_seqs);

// True for a decode-only step: every request has num_tokens == 1 and logits_indices is
// 0, 1, ..., B - 1 (each request's row once, in order).
bool is_decode_only_step(const SchedulerOutput& output, const std::vector<int32_t>& logits_indices);

}  // namespace pagedllm
