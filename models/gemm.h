// Packing-free float32 matrix products for the model's linears, in the BLAS's own summation order.
//
// The linears multiply [R, in] by [in, out] with in, out = 50..150 and R = batch x length (736 for MOSI at
// batch 16): for shapes this small the BLAS spends about a third of a product copying its operands into
// panels. These kernels read the operands where they lie (one copy of B when it is transposed, K x N floats)
// and keep a block of C in registers, on AVX-512 or AVX2 with FMA, chosen at run time.
//
// Order of the sums: each element of C is, for each block of k (kblocks), acc = fma(a_ik, b_kj, acc) in
// increasing k from acc = 0, then c = c + acc, c starting at 0 (beta = 0) or at C (beta = 1). That is what
// OpenBLAS's level-3 kernels compute (sgemm_kernel, C += alpha*acc after the beta pass), so where the BLAS's
// blocks are known (ops.cpp checks them against the BLAS at the first large product) the result is its
// result bit for bit.
#pragma once

#include <cstdint>
#include <vector>

namespace dmdbench::models::gemm {

// A row-major matrix: data, leading dimension (elements between rows), and whether op(X) = X^T.
struct Operand {
  const float* data;
  int64_t ld;
  bool trans;
};

// How k is cut into blocks, as OpenBLAS's level-3 driver cuts it: while k remains, a block of q when at
// least 2q remain, else half of the rest rounded up to a multiple of `unroll` when more than q remain, else
// the rest. q = 0: one block.
struct KBlocks {
  int64_t q = 0, unroll = 1;
};

// The lengths of the blocks of k = 0..K-1 under kb.
std::vector<int64_t> block_lengths(int64_t K, KBlocks kb);

// The instruction sets with a kernel; none: the CPU has neither (no FMA), and multiply must not be called.
enum class Isa { none, avx2, avx512 };
Isa best_isa();                 // the best this CPU has
bool supported(Isa isa);        // whether this CPU runs isa's kernel
const char* isa_name(Isa isa);  // "avx512", "avx2", "none"

// Row-major C[M,N] (leading dimension ldc) = op(A)[M,K] op(B)[K,N] + beta C in the order above; beta is 0
// or 1. Rows of C are split over LibTorch's OpenMP pool for large products; the result does not depend on
// the split. isa must be supported.
void multiply(Isa isa, int64_t M, int64_t N, int64_t K, Operand a, Operand b, float beta, float* c,
              int64_t ldc, KBlocks kb);

}  // namespace dmdbench::models::gemm
