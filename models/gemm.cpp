// Packing-free products in the BLAS's order (see gemm.h): blocks of k, a transposed B copied once, rows of C
// split over the OpenMP pool, and the per-instruction-set kernels (gemm_avx2.cpp, gemm_avx512.cpp).
#include "models/gemm.h"

#include <omp.h>

#include <algorithm>

#include "models/gemm_isa.h"
#include "models/kernels.h"

namespace dmdbench::models::gemm {

std::vector<int64_t> block_lengths(int64_t K, KBlocks kb) {
  std::vector<int64_t> lengths;
  for (int64_t left = K; left > 0;) {
    int64_t len = left;
    if (kb.q > 0 && left >= 2 * kb.q)
      len = kb.q;
    else if (kb.q > 0 && left > kb.q)
      len = (left / 2 + kb.unroll - 1) / kb.unroll * kb.unroll;
    lengths.push_back(len);
    left -= len;
  }
  return lengths;
}

bool supported(Isa isa) {
#if defined(__x86_64__) && defined(__GNUC__)
  switch (isa) {
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::none:
      return true;
  }
#endif
  return isa == Isa::none;
}

Isa best_isa() {
  static const Isa best = supported(Isa::avx512) ? Isa::avx512 : supported(Isa::avx2) ? Isa::avx2 : Isa::none;
  return best;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return "avx512";
    case Isa::avx2:
      return "avx2";
    case Isa::none:
      break;
  }
  return "none";
}

void multiply(Isa isa, int64_t M, int64_t N, int64_t K, Operand a, Operand b, float beta, float* c,
              int64_t ldc, KBlocks kb) {
  if (M <= 0 || N <= 0) return;
  // B^T [N,K] (ldb) is copied once to [K,N] so that the kernel reads B's rows with unit stride.
  static thread_local std::vector<float> b_rows;
  const float* bp = b.data;
  int64_t ldb = b.ld;
  if (b.trans) {
    b_rows.resize(static_cast<size_t>(K * N));
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < N; ++j) b_rows[static_cast<size_t>(k * N + j)] = b.data[j * b.ld + k];
    bp = b_rows.data();
    ldb = N;
  }
  const isa::Panel panel{a.data, a.ld, a.trans, bp, ldb, c, ldc, N};
  auto kernel = isa == Isa::avx512 ? isa::rows_avx512 : isa::rows_avx2;
  const std::vector<int64_t> blocks = block_lengths(K, kb);
  auto rows = [&](int64_t i0, int64_t i1) {
    if (K == 0 && beta == 0.0f)  // no block: C = 0 (the BLAS's beta pass)
      for (int64_t i = i0; i < i1; ++i) std::fill(c + i * ldc, c + i * ldc + N, 0.0f);
    int64_t k0 = 0;
    for (size_t blk = 0; blk < blocks.size(); ++blk) {
      kernel(panel, i0, i1, k0, k0 + blocks[blk], blk == 0 && beta == 0.0f);
      k0 += blocks[blk];
    }
  };
  // From kernels::kSplitWork multiply-adds on, one piece of rows per thread, of equal size (dW's 50 rows: 25
  // and 25, not a tile-aligned 48 and 2).
  const int team = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), M));
  const int64_t per_piece = (M + team - 1) / team;
  if (team > 1 && M * N * K >= kernels::kSplitWork && !omp_in_parallel()) {
#pragma omp parallel for schedule(static) num_threads(team)
    for (int64_t piece = 0; piece < team; ++piece)
      rows(std::min(M, piece * per_piece), std::min(M, (piece + 1) * per_piece));
  } else {
    rows(0, M);
  }
}

}  // namespace dmdbench::models::gemm
