// CPU feature detection with __builtin_cpu_supports (g++ >= 12 knows avx512bf16).
// Invariant: g_override is either -1 (none) or a tier <= detected_isa().
#include "backend/cpu/isa.h"

#include <atomic>

#include "util/check.h"

namespace pagedllm {
namespace cpu {

namespace {

std::atomic<int> g_override{-1};

Isa detect() {
  __builtin_cpu_init();
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
              __builtin_cpu_supports("f16c");
  if (!avx2) return Isa::kUnsupported;
  bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (!avx512) return Isa::kAvx2;
  bool bf16 = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vnni");
  return bf16 ? Isa::kAvx512Bf16 : Isa::kAvx512;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kUnsupported: return "unsupported";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx512Bf16: return "avx512bf16";
  }
  return "unknown";
}

Isa detected_isa() {
  static const Isa isa = detect();
  return isa;
}

bool isa_supported(Isa isa) {
  return isa != Isa::kUnsupported && static_cast<int>(isa) <= static_cast<int>(detected_isa());
}

bool cpu_has_avx512vnni() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vnni");
}

Isa active_isa() {
  int o = g_override.load(std::memory_order_relaxed);
  return o < 0 ? detected_isa() : static_cast<Isa>(o);
}

void set_isa_override(Isa isa) {
  PAGEDLLM_CHECK(isa_supported(isa), "ISA override " << isa_name(isa) << " is not supported by "
                                     << "this CPU (detected " << isa_name(detected_isa()) << ")");
  g_override.store(static_cast<int>(isa), std::memory_order_relaxed);
}

void clear_isa_override() { g_override.store(-1, std::memory_order_relaxed); }

}  // namespace cpu
}  // namespace pagedllm
