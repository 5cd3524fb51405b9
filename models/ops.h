// Small functional building blocks shared by the model files, with fast CPU paths:
//  - linear over any leading dims (and over a block of rows of the weight) as one autograd node whose three
//    products give LibTorch's addmm/mm bits without the dispatcher: the BLAS's sgemm_ called as LibTorch
//    calls it, or gemm.h's kernel where it sums in the BLAS's order (see set_threads below); LibTorch 1.13's
//    F::linear takes matmul + add for 3-D input, and reshape/t/view/narrow each add a node,
//  - LayerNorm with a fused forward/backward kernel,
//  - dropout in one pass with a counter-based mask instead of bernoulli_ (same distribution; the seed comes
//    from the default generator, so torch::manual_seed still fixes it; the backward regenerates the mask).
// Without a gradient to record (evaluation) linear and LayerNorm skip the autograd node. Other devices and
// dtypes fall back to the ATen ops.
#pragma once

#include <torch/torch.h>

namespace dmdbench::models::ops {

// x [..., in] -> [..., rows] = x W[r0:r0+rows]^T + b[r0:r0+rows] (b may be undefined; rows < 0: all rows
// from r0). The gradient of W (and b) is the full-size tensor, zero outside the block.
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias = {},
                     int64_t row0 = 0, int64_t rows = -1);

// relu(linear(x)) in the same node.
torch::Tensor linear_relu(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

// Conv1d without bias (padding 0, stride 1) on a batch-first sequence: x [N,T,in], weight [out,in,k] (the
// Conv1d layout) -> [N,T-k+1,out], time-major. One GEMM [N*T,in] x [in,k*out] and a sum of k shifted blocks.
torch::Tensor temporal_conv(const torch::Tensor& x, const torch::Tensor& weight);

// LayerNorm over the last dimension (biased variance), as torch::layer_norm.
torch::Tensor layer_norm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                         double eps = 1e-5);

// Sizes LibTorch's intra-op pool and the BLAS's for `threads` threads. Where gemm's kernel gives the BLAS's
// bits on this machine (checked once against its one-thread driver), the BLAS keeps one thread and the
// linears' products of more than 100^3 multiply-adds take the kernel, which splits their rows over LibTorch's
// pool: one pool (no second one spinning on the same cores), and the products' bits do not depend on the
// thread count. Elsewhere the BLAS gets `threads` threads, as before.
void set_threads(int threads);

// While alive, OpenBLAS runs on `threads` threads (set_threads may keep it on one); the count before is
// restored after. Nothing where the BLAS is not OpenBLAS.
class BlasThreads {
 public:
  explicit BlasThreads(int threads);
  ~BlasThreads();
  BlasThreads(const BlasThreads&) = delete;
  BlasThreads& operator=(const BlasThreads&) = delete;

 private:
  int was_;
};

// Whether the linears' products give the one-thread bits at any thread count (gemm's kernel is in use).
bool products_follow_threads();

// What multiplies the linears' products of 100^3 to 2^25 multiply-adds on one thread (736 x 50 x 50 .. 736 x
// 400 x 100), all above 100^3 where they split over more (not inside a job of jobs.h, which runs on one), and
// the small ones of ops.cpp's kBlasSmallProduct rule: "<isa> kernel, k blocks q/unroll, small products (k
// blocks none)" (gemm.h; "none": one block), else "BLAS sgemm".
std::string products_kernel();

// Inverted dropout: x when !training or p == 0; otherwise x * mask with mask in {0, 1/(1-p)}.
torch::Tensor dropout(const torch::Tensor& x, double p, bool training);

}  // namespace dmdbench::models::ops
