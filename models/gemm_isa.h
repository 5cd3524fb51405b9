// Internal to gemm.cpp and its per-instruction-set kernels (gemm_avx2.cpp, gemm_avx512.cpp, each compiled
// for its instruction set): the block of a product one kernel call computes.
#pragma once

#include <cstdint>

namespace dmdbench::models::gemm::isa {

// Row-major C (ldc) += op(A) B over one block of k, B [K,N] row-major (ldb) with unit stride along n.
struct Panel {
  const float* a;
  int64_t lda;
  bool a_trans;  // op(A)[i,k] = a[k*lda + i], else a[i*lda + k]
  const float* b;
  int64_t ldb;
  float* c;
  int64_t ldc;
  int64_t n;  // columns of C
};

// Rows i0..i1-1 of C over k = k0..k1-1: c = (from_zero ? 0 : c) + acc, acc = fma(a_ik, b_kj, acc) in k order.
void rows_avx2(const Panel& p, int64_t i0, int64_t i1, int64_t k0, int64_t k1, bool from_zero);
void rows_avx512(const Panel& p, int64_t i0, int64_t i1, int64_t k0, int64_t k1, bool from_zero);

}  // namespace dmdbench::models::gemm::isa
