#include "runner/graph_sizes.h"

#include <algorithm>

namespace pagedllm {

std::vector<int64_t> graph_capture_sizes(const std::vector<int64_t>& requested, int64_t max_num_seqs) {
  std::vector<int64_t> sizes;
  if (requested.empty()) {
    for (int64_t s : {1, 2, 4}) sizes.push_back(s);
    for (int64_t s = 8; s <= max_num_seqs; s += 8) sizes.push_back(s);
    sizes.push_back(max_num_seqs);
  } else {
    sizes = requested;
  }
  sizes.erase(std::remove_if(sizes.begin(), sizes.end(), [&](int64_t s) { return s < 1 || s > max_num_seqs; }),
              sizes.end());
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  return sizes;
}

int64_t graph_padded_size(const std::vector<int64_t>& sizes, int64_t num_seqs) {
  auto it = std::lower_bound(sizes.begin(), sizes.end(), num_seqs);
  return it == sizes.end() ? -1 : *it;
}

bool is_decode_only_step(const SchedulerOutput& output, const std::vector<int32_t>& logits_indices) {
  if (logits_indices.size() != output.scheduled.size()) return false;
  for (size_t b = 0; b < output.scheduled.size(); ++b) {
    if (output.scheduled[b].num_tokens != 1 || logits_indices[b] != static_cast<int32_t>(b)) return false;
  }
  return true;
}

}  // namespace pagedllm
