// gemm's packing-free products (models/gemm.h): the cut of k into blocks, and each instruction set's kernel
// against the stated order of the sums, computed here one element at a time with std::fma.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "models/gemm.h"

namespace gemm = dmdbench::models::gemm;

namespace {

// OpenBLAS 0.3.21's SkylakeX sgemm cuts k this way (q = 448, unroll 16): its products of k = 1000 equal,
// bit for bit, the sums over k = 0..447, 448..735 and 736..999 added to C in that order.
TEST(ModelsGemm, BlocksOfKAreOpenBLASsCut) {
  const gemm::KBlocks skx{448, 16};
  EXPECT_EQ(gemm::block_lengths(1000, skx), (std::vector<int64_t>{448, 288, 264}));
  EXPECT_EQ(gemm::block_lengths(736, skx),
            (std::vector<int64_t>{368, 368}));  // half of 736, a multiple of 16
  EXPECT_EQ(gemm::block_lengths(2944, skx), (std::vector<int64_t>{448, 448, 448, 448, 448, 352, 352}));
  EXPECT_EQ(gemm::block_lengths(897, skx), (std::vector<int64_t>{448, 224, 225}));  // 2q <= 897: q first
  EXPECT_EQ(gemm::block_lengths(449, skx), (std::vector<int64_t>{224, 225}));  // (449/2 + 15) / 16 * 16 = 224
  EXPECT_EQ(gemm::block_lengths(448, skx), (std::vector<int64_t>{448}));
  EXPECT_EQ(gemm::block_lengths(5000, gemm::KBlocks{}), (std::vector<int64_t>{5000}));
  EXPECT_TRUE(gemm::block_lengths(0, skx).empty());
}

// C = op(A) op(B) + beta C one element at a time: per block of k, acc = fma(a, b, acc) from 0, then c += acc.
std::vector<float> reference(int64_t M, int64_t N, int64_t K, gemm::Operand a, gemm::Operand b, float beta,
                             const std::vector<float>& c0, gemm::KBlocks kb) {
  std::vector<float> c(c0.size());
  const std::vector<int64_t> blocks = gemm::block_lengths(K, kb);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      float cij = beta == 0.0f ? 0.0f : c0[i * N + j];
      int64_t k0 = 0;
      for (int64_t len : blocks) {
        float acc = 0.0f;
        for (int64_t k = k0; k < k0 + len; ++k) {
          const float aik = a.trans ? a.data[k * a.ld + i] : a.data[i * a.ld + k];
          const float bkj = b.trans ? b.data[j * b.ld + k] : b.data[k * b.ld + j];
          acc = std::fma(aik, bkj, acc);
        }
        cij = cij + acc;
        k0 += len;
      }
      c[i * N + j] = cij;
    }
  }
  return c;
}

struct Product {
  int64_t M, N, K;
  bool ta, tb;
  float beta;
  int64_t pad;  // extra elements per row of A and B (leading dimensions beyond the matrix)
};

// Random operands for p (a fixed seed per product) and the reference's C.
struct Operands {
  std::vector<float> a, b, c0, want;
  gemm::Operand oa, ob;
};
Operands operands(const Product& p, gemm::KBlocks kb) {
  std::mt19937 rng(static_cast<uint32_t>(p.M * 7919 + p.N * 104729 + p.K));
  std::normal_distribution<float> normal;
  const int64_t lda = (p.ta ? p.M : p.K) + p.pad, ldb = (p.tb ? p.K : p.N) + p.pad;
  Operands o;
  o.a.resize(static_cast<size_t>((p.ta ? p.K : p.M) * lda));
  o.b.resize(static_cast<size_t>((p.tb ? p.N : p.K) * ldb));
  o.c0.resize(static_cast<size_t>(p.M * p.N));
  for (float& x : o.a) x = normal(rng);
  for (float& x : o.b) x = normal(rng);
  for (float& x : o.c0) x = normal(rng);
  o.oa = {o.a.data(), lda, p.ta};
  o.ob = {o.b.data(), ldb, p.tb};
  o.want = reference(p.M, p.N, p.K, o.oa, o.ob, p.beta, o.c0, kb);
  return o;
}

// The kernel's C.
std::vector<float> kernel(gemm::Isa isa, const Product& p, const Operands& o, gemm::KBlocks kb) {
  std::vector<float> got = o.c0;
  gemm::multiply(isa, p.M, p.N, p.K, o.oa, o.ob, p.beta, got.data(), p.N, kb);
  return got;
}

bool same_bits(const std::vector<float>& x, const std::vector<float>& y) {
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

std::vector<gemm::Isa> isas_here() {
  std::vector<gemm::Isa> isas;
  for (gemm::Isa isa : {gemm::Isa::avx2, gemm::Isa::avx512})
    if (gemm::supported(isa)) isas.push_back(isa);
  return isas;
}

// Every layout, beta 0 and 1, strided operands, row counts around the tiles (1, 5, 13, 50) and column counts
// around the vectors and column blocks (1 .. 150), k short, long and cut in blocks: equal bit for bit.
TEST(ModelsGemm, EachKernelSumsInTheStatedOrder) {
  const std::vector<gemm::Isa> isas = isas_here();
  ASSERT_FALSE(isas.empty())
      << "this x86-64 CPU has neither AVX2+FMA nor AVX-512";  // both machine kinds have AVX2
  const gemm::KBlocks skx{448, 16};
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int64_t M : {1, 5, 13, 50})
        for (int64_t N : {1, 7, 8, 16, 17, 24, 25, 50, 64, 65, 150})
          for (int64_t K : {1, 50, 1000}) {
            if (K == 1000 && N != 17 && N != 65) continue;  // the cut of k: two column counts suffice
            const Product p{M, N, K, ta, tb, (M + N) % 2 == 0 ? 0.0f : 1.0f, M % 3};
            const Operands o = operands(p, skx);
            for (gemm::Isa isa : isas)
              EXPECT_TRUE(same_bits(kernel(isa, p, o, skx), o.want))
                  << gemm::isa_name(isa) << " M=" << M << " N=" << N << " K=" << K << " ta=" << ta
                  << " tb=" << tb;
          }
  const Product one_block{37, 50, 1000, true, false, 1.0f, 0};  // k in one block whatever its length
  const Operands o = operands(one_block, gemm::KBlocks{});
  for (gemm::Isa isa : isas) EXPECT_TRUE(same_bits(kernel(isa, one_block, o, gemm::KBlocks{}), o.want));
}

// A block of k longer than 1.5 x 96 runs in pieces of 96 over panels of 96 rows, its running sums kept
// between pieces: the same chain of fma. Blocks just under and over that length, several panels with row
// tails, each layout, beta 0 and 1: equal bit for bit.
TEST(ModelsGemm, LongBlocksOfKGoInPiecesInTheSameOrder) {
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int64_t M : {7, 203})
        for (int64_t N : {17, 50, 65})
          for (int64_t K : {144, 145, 240, 241, 400}) {
            const Product p{M, N, K, ta, tb, K % 2 == 0 ? 0.0f : 1.0f, (M + N) % 3};
            const Operands o = operands(p, gemm::KBlocks{});
            for (gemm::Isa isa : isas_here())
              EXPECT_TRUE(same_bits(kernel(isa, p, o, gemm::KBlocks{}), o.want))
                  << gemm::isa_name(isa) << " M=" << M << " N=" << N << " K=" << K << " ta=" << ta
                  << " tb=" << tb;
          }
}

// Rows split over two threads give the one-thread result (each element is summed by one thread, in order).
TEST(ModelsGemm, TwoThreadsGiveTheOneThreadBits) {
  const int previous = torch::get_num_threads();
  const gemm::KBlocks skx{448, 16};
  for (const Product& p :
       {Product{240, 50, 100, false, true, 1.0f, 0}, Product{50, 64, 1000, true, false, 0.0f, 0}}) {
    const Operands o = operands(p, skx);
    for (gemm::Isa isa : isas_here()) {
      torch::set_num_threads(1);
      const std::vector<float> one = kernel(isa, p, o, skx);
      torch::set_num_threads(2);
      const std::vector<float> two = kernel(isa, p, o, skx);
      EXPECT_TRUE(same_bits(one, o.want)) << gemm::isa_name(isa);
      EXPECT_TRUE(same_bits(two, one)) << gemm::isa_name(isa);
    }
  }
  torch::set_num_threads(previous);
}

}  // namespace
