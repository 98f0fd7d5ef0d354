// Run-time CPU feature detection for the CPU backend. Kernels built for an ISA tier (their own
// compile flags, see sources.cmake) are only called when active_isa() >= that tier.
// Invariant: the override, when set, never exceeds detected_isa().
#pragma once

namespace pagedllm {
namespace cpu {

// Ordered tiers: each includes the ones below it.
enum class Isa : int {
  kUnsupported = 0,  // no AVX2 + FMA: the CPU backend refuses to start
  kAvx2 = 1,         // AVX2 + FMA + F16C
  kAvx512 = 2,       // + AVX-512 F/BW/VL/DQ
  kAvx512Bf16 = 3,   // + AVX512-BF16 and AVX512-VNNI
};

const char* isa_name(Isa isa);

// The best tier this CPU supports (computed once).
Isa detected_isa();
bool isa_supported(Isa isa);  // isa != kUnsupported && isa <= detected_isa()
bool cpu_has_avx512vnni();

// The tier kernels dispatch to: the override if set, else detected_isa().
Isa active_isa();

// Test hook (the only process-wide mutable state of the backend): forces kernels to dispatch to
// a lower tier so every ISA path can be tested on one machine. CHECKs isa_supported(isa).
void set_isa_override(Isa isa);
void clear_isa_override();

}  // namespace cpu
}  // namespace pagedllm
