// gemm's AVX-512 kernel (this file is compiled with -mavx512f -mfma; gemm.cpp calls it only where the CPU
// has AVX-512F).
#include <immintrin.h>

#include "models/gemm_isa.h"

namespace dmdbench::models::gemm::isa {
namespace {

struct Vec {
  static constexpr int W = 16;
  static constexpr int kMaxVectors = 4;  // 64 columns per block: N = 50 in one block
  // 32 registers: rows x vectors accumulators, the vectors of B and the broadcast a.
  static constexpr int rows_for(int vectors) { return vectors >= 4 ? 6 : vectors == 3 ? 8 : 12; }
  using V = __m512;
  using Mask = __mmask16;
  static Mask mask(int n) { return static_cast<Mask>((1u << n) - 1u); }
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, V v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
  static V broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
};

}  // namespace
}  // namespace dmdbench::models::gemm::isa

#include "models/gemm_tiles.inc"

namespace dmdbench::models::gemm::isa {
void rows_avx512(const Panel& p, int64_t i0, int64_t i1, int64_t k0, int64_t k1, bool from_zero) {
  rows_any(p, i0, i1, k0, k1, from_zero);
}
}  // namespace dmdbench::models::gemm::isa
