// FreeBlockQueue: an intrusive doubly linked list over block ids.
// Invariant: following next_ from head_ visits exactly the blocks with in_list_ set, size_ of
// them, ending at tail_; prev_ mirrors next_.
#include "kv/free_block_queue.h"

#include "util/check.h"

namespace pagedllm {

FreeBlockQueue::FreeBlockQueue(int64_t num_blocks)
    : prev_(static_cast<size_t>(num_blocks), kNone),
      next_(static_cast<size_t>(num_blocks), kNone),
      in_list_(static_cast<size_t>(num_blocks), 0) {
  PAGEDLLM_CHECK(num_blocks >= 0 && num_blocks <= INT32_MAX, "bad num_blocks " << num_blocks);
  for (int64_t b = 0; b < num_blocks; ++b) push_back(static_cast<int32_t>(b));
}

bool FreeBlockQueue::contains(int32_t block_id) const {
  PAGEDLLM_CHECK(block_id >= 0 && static_cast<size_t>(block_id) < in_list_.size(),
                 "block id " << block_id << " out of range [0, " << in_list_.size() << ")");
  return in_list_[block_id] != 0;
}

int32_t FreeBlockQueue::pop_front() {
  PAGEDLLM_CHECK(size_ > 0, "pop_front from an empty free block queue");
  int32_t block_id = head_;
  remove(block_id);
  return block_id;
}

void FreeBlockQueue::push_back(int32_t block_id) {
  PAGEDLLM_CHECK(!contains(block_id), "block " << block_id << " is already in the free queue");
  prev_[block_id] = tail_;
  next_[block_id] = kNone;
  if (tail_ == kNone) {
    head_ = block_id;
  } else {
    next_[tail_] = block_id;
  }
  tail_ = block_id;
  in_list_[block_id] = 1;
  ++size_;
}

void FreeBlockQueue::remove(int32_t block_id) {
  PAGEDLLM_CHECK(contains(block_id), "block " << block_id << " is not in the free queue");
  int32_t prev = prev_[block_id];
  int32_t next = next_[block_id];
  if (prev == kNone) {
    head_ = next;
  } else {
    next_[prev] = next;
  }
  if (next == kNone) {
    tail_ = prev;
  } else {
    prev_[next] = prev;
  }
  prev_[block_id] = kNone;
  next_[block_id] = kNone;
  in_list_[block_id] = 0;
  --size_;
}

std::vector<int32_t> FreeBlockQueue::to_vector() const {
  std::vector<int32_t> ids;  // [size_]
  ids.reserve(static_cast<size_t>(size_));
  for (int32_t b = head_; b != kNone; b = next_[b]) {
    PAGEDLLM_CHECK(static_cast<int64_t>(ids.size()) < size_, "free block queue has a cycle");
    ids.push_back(b);
  }
  PAGEDLLM_CHECK(static_cast<int64_t>(ids.size()) == size_,
                 "free block queue links " << ids.size() << " blocks but size is " << size_);
  return ids;
}

}  // namespace pagedllm
