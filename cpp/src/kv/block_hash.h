// Block hashes for automatic prefix caching: each full KV block is named by a chained 64-bit
// hash of (its parent block's hash, its block_size token ids, extra keys). Equal hashes are
// only a hint: a cache hit is accepted after the block's token ids and its parent block are
// compared exactly (KVCacheManager), so a collision can cost a miss but never serves wrong KV.
#pragma once

#include <cstdint>

namespace pagedllm {

using BlockHash = uint64_t;

// The parent hash of a sequence's first block.
constexpr BlockHash kRootBlockHash = 0x6a09e667f3bcc908ULL;

// Keys besides the tokens that change a block's KV. None are set yet; a LoRA adapter id or a
// per-request cache salt goes here, so that blocks of different adapters/salts never match.
struct BlockHashExtra {
  uint64_t key = 0;  // 0 = no extra key
};

// The hash of a block holding tokens[0, num_tokens) after the block hashed as parent.
// Precondition: num_tokens >= 0 and tokens points at num_tokens ids (checked for the count).
BlockHash hash_block_tokens(BlockHash parent, const int32_t* tokens, int64_t num_tokens,
                            BlockHashExtra extra = BlockHashExtra());

}  // namespace pagedllm
