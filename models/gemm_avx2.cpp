// gemm's AVX2 kernel (this file is compiled with -mavx2 -mfma; gemm.cpp calls it only where the CPU has
// both).
#include <immintrin.h>

#include "models/gemm_isa.h"

namespace dmdbench::models::gemm::isa {
namespace {

struct Vec {
  static constexpr int W = 8;
  static constexpr int kMaxVectors = 3;  // 24 columns per block
  // 16 registers: rows x vectors accumulators, the vectors of B and the broadcast a.
  static constexpr int rows_for(int vectors) { return vectors >= 3 ? 4 : vectors == 2 ? 6 : 12; }
  using V = __m256;
  using Mask = __m256i;
  static Mask mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, V v, Mask m) { _mm256_maskstore_ps(p, m, v); }
  static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
};

}  // namespace
}  // namespace dmdbench::models::gemm::isa

#include "models/gemm_tiles.inc"

namespace dmdbench::models::gemm::isa {
void rows_avx2(const Panel& p, int64_t i0, int64_t i1, int64_t k0, int64_t k1, bool from_zero) {
  rows_any(p, i0, i1, k0, k1, from_zero);
}
}  // namespace dmdbench::models::gemm::isa
