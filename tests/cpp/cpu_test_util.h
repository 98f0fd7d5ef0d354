// Helpers shared by the CPU backend tests: the ISA tiers to run under, forcing one, a CPU
// backend, and float bit patterns.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/float_convert.h"
#include "backend/cpu/isa.h"

namespace cpu_test {

// The tiers this machine can run, lowest first.
inline std::vector<pagedllm::cpu::Isa> supported_isas() {
  using pagedllm::cpu::Isa;
  std::vector<Isa> out;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16})
    if (pagedllm::cpu::isa_supported(isa)) out.push_back(isa);
  return out;
}

// Forces one ISA tier for the kernels while in scope.
struct IsaScope {
  explicit IsaScope(pagedllm::cpu::Isa isa) { pagedllm::cpu::set_isa_override(isa); }
  ~IsaScope() { pagedllm::cpu::clear_isa_override(); }
};

inline std::unique_ptr<pagedllm::Backend> make_backend(int threads) {
  std::string err;
  std::unique_ptr<pagedllm::Backend> b = pagedllm::create_backend("cpu", threads, &err);
  if (!b) throw std::runtime_error("create_backend(cpu): " + err);
  return b;
}

inline uint32_t bits_of(float f) { return pagedllm::cpu::float_to_bits(f); }
inline float float_of(uint32_t b) { return pagedllm::cpu::bits_to_float(b); }

}  // namespace cpu_test
