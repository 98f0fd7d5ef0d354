// Scalar conversions between float32 and the 16-bit float formats (bfloat16 and IEEE half
// are carried as uint16_t). Internal linkage, so ISA files may include this safely.
// float_to_bf16 rounds to nearest even and keeps NaN a (quiet) NaN of the same sign.
#pragma once

#include <cstdint>
#include <cstring>

namespace pagedllm {
namespace cpu {
namespace {

inline float bits_to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint32_t float_to_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

inline float bf16_to_float(uint16_t h) { return bits_to_float(static_cast<uint32_t>(h) << 16); }

inline uint16_t float_to_bf16(float f) {
  uint32_t bits = float_to_bits(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

inline float half_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (mant << 13));  // inf / NaN
  if (exp != 0) return bits_to_float(sign | ((exp + 112) << 23) | (mant << 13));
  if (mant == 0) return bits_to_float(sign);
  int shift = 0;  // subnormal: normalize the mantissa
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    ++shift;
  }
  return bits_to_float(sign | ((113 - shift) << 23) | ((mant & 0x3ffu) << 13));
}

}  // namespace
}  // namespace cpu
}  // namespace pagedllm
