# CPU backend kernels, appended to the groups of cpp/CMakeLists.txt (paths relative to cpp/).
# A file in an ISA group is built with that group's flags and only called after the run-time
# check in src/backend/cpu/isa.h.
list(APPEND PAGEDLLM_CPU_SOURCES
  src/backend/cpu/cpu_kernels.cc
  src/backend/cpu/packed_weight.cc)
list(APPEND PAGEDLLM_CPU_AVX2_SOURCES
  src/backend/cpu/linear_avx2.cc
  src/backend/cpu/packed_linear_avx2.cc
  src/backend/cpu/attention_avx2.cc
  src/backend/cpu/norm_avx2.cc
  src/backend/cpu/rotary_avx2.cc
  src/backend/cpu/activation_avx2.cc
  src/backend/cpu/embedding_avx2.cc
  src/backend/cpu/kv_cache_avx2.cc)
list(APPEND PAGEDLLM_CPU_AVX512_SOURCES
  src/backend/cpu/linear_avx512.cc
  src/backend/cpu/packed_linear_avx512.cc
  src/backend/cpu/attention_avx512.cc)
