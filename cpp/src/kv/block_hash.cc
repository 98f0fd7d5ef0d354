// Block hash: a 64-bit multiply-rotate hash over 64-bit words (two token ids per word) seeded
// with the parent hash, the token count and the extra key, closed by the splitmix64 finalizer
// so every input bit reaches every output bit.
// Invariant: the result depends on exactly (parent, tokens[0, num_tokens), extra).
#include "kv/block_hash.h"

#include "util/check.h"

namespace pagedllm {
namespace {

constexpr uint64_t kMul1 = 0x9E3779B97F4A7C15ULL;
constexpr uint64_t kMul2 = 0xC2B2AE3D27D4EB4FULL;

uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

uint64_t fmix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t absorb(uint64_t h, uint64_t word) {
  h ^= rotl(word * kMul2, 31) * kMul1;
  return rotl(h, 27) * 5 + 0x52DCE729ULL;
}

}  // namespace

BlockHash hash_block_tokens(BlockHash parent, const int32_t* tokens, int64_t num_tokens, BlockHashExtra extra) {
  PAGEDLLM_CHECK(num_tokens >= 0, "hash of a block with " << num_tokens << " tokens");
  uint64_t h = fmix64(parent ^ kMul1);
  h = absorb(h, static_cast<uint64_t>(num_tokens));
  h = absorb(h, extra.key);
  int64_t i = 0;
  for (; i + 1 < num_tokens; i += 2) {
    uint64_t word = static_cast<uint64_t>(static_cast<uint32_t>(tokens[i])) |
                    (static_cast<uint64_t>(static_cast<uint32_t>(tokens[i + 1])) << 32);
    h = absorb(h, word);
  }
  if (i < num_tokens) h = absorb(h, static_cast<uint64_t>(static_cast<uint32_t>(tokens[i])) | (1ULL << 63));
  return fmix64(h ^ parent);
}

}  // namespace pagedllm
