// What this x86-64 CPU can run, asked once (GCC's __builtin_cpu_supports; false elsewhere). Header only and
// free of LibTorch: the attention's AVX-512 rows (kernels.cpp), OpenBLAS's kernel request (blas_core.cpp) and
// the tests ask the same question the same way.
#pragma once

namespace dmdbench::models::cpu {

// AVX-512 as x86-64-v4 has it (F, CD, BW, DQ, VL), with FMA: what the attention's wide rows are compiled for
// and what OpenBLAS's SkylakeX kernels use.
inline bool has_avx512() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
                          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

// AVX2 with FMA (x86-64-v3's vector part).
inline bool has_avx2_fma() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

}  // namespace dmdbench::models::cpu
