// The fast CPU paths of models/ops.h against the ATen ops they replace: values and gradients.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "harness/training/device.h"
#include "models/blas_core.h"
#include "models/compat.h"
#include "models/fused_adam.h"
#include "models/kernels.h"
#include "models/ops.h"
#include "models/transformer.h"

namespace ops = dmdbench::models::ops;
using torch::Tensor;

namespace {

double max_abs_diff(const Tensor& a, const Tensor& b) {
  return (a - b).abs().max().item<double>();
}

}  // namespace

TEST(ModelsOps, LayerNormMatchesATenValuesAndGradients) {
  for (const auto& shape :
       std::vector<std::vector<int64_t>>{{7, 3, 50}, {5, 30}, {4, 2, 100}, {3, 7}, {2, 16}}) {
    torch::manual_seed(1);
    const int64_t D = shape.back();
    Tensor x = (torch::randn(shape) * 3 + 1).requires_grad_();
    Tensor w = torch::randn({D}).requires_grad_(), b = torch::randn({D}).requires_grad_();
    Tensor g = torch::randn(shape);
    Tensor got = ops::layer_norm(x, w, b, 1e-5), want = torch::layer_norm(x, {D}, w, b, 1e-5);
    EXPECT_LT(max_abs_diff(got, want), 1e-5) << "D=" << D;
    auto gg = torch::autograd::grad({got}, {x, w, b}, {g});
    auto gw = torch::autograd::grad({want}, {x, w, b}, {g});
    for (int i = 0; i < 3; ++i)
      EXPECT_LT(max_abs_diff(gg[i], gw[i]), 2e-5 * std::max(1.0, gw[i].abs().max().item<double>()))
          << "D=" << D << " input " << i;
  }
}

TEST(ModelsOps, LayerNormOfConstantRowIsBias) {
  // Zero variance: (x - mean) = 0, so the output is the bias exactly, like ATen's (rstd = 1/sqrt(eps)).
  Tensor x = torch::zeros({2, 10}), w = torch::ones({10}), b = torch::arange(10).to(torch::kFloat);
  EXPECT_TRUE(torch::equal(ops::layer_norm(x, w, b), b.expand({2, 10})));
}

TEST(ModelsOps, DropoutKeepsWithProbabilityOneMinusPAndScales) {
  torch::manual_seed(3);
  Tensor x = torch::ones({1000, 100}).requires_grad_();
  torch::manual_seed(9);
  Tensor y = ops::dropout(x, 0.3, /*training=*/true);
  const double kept = y.ne(0).sum().item<double>() / y.numel();  // 100k draws: sd ~ 0.0015
  EXPECT_NEAR(kept, 0.7, 0.007);
  EXPECT_NEAR(y.max().item<double>(), 1.0 / 0.7, 1e-6);
  EXPECT_EQ(y.masked_select(y.ne(0)).min().item<double>(), y.max().item<double>());
  // Same seed, same mask; the gradient is the mask.
  torch::manual_seed(9);
  Tensor y2 = ops::dropout(x, 0.3, true);
  EXPECT_TRUE(torch::equal(y, y2));
  Tensor gx = torch::autograd::grad({y.sum()}, {x})[0];
  EXPECT_TRUE(torch::equal(gx, y.detach()));
  // Another draw differs; eval mode and p = 0 are the identity.
  EXPECT_FALSE(torch::equal(ops::dropout(x, 0.3, true), y));
  EXPECT_TRUE(ops::dropout(x, 0.3, false).is_same(x));
  EXPECT_TRUE(ops::dropout(x, 0.0, true).is_same(x));
}

// Dropout is one pass (x times the multiplier regenerated from the seed, forward and backward): the values
// and the gradient must be x * mask and g * mask bit for bit, mask = dropout_mask with the seed the generator
// gives, also for a strided x and a length that is not a multiple of the kernel's 8 lanes.
TEST(ModelsOps, DropoutIsInputTimesTheSeedsMaskExactly) {
  namespace k = dmdbench::models::kernels;
  torch::manual_seed(3);
  const Tensor x = (torch::randn({37, 51}) * 3).t().requires_grad_();  // [51,37], strided
  const Tensor g = torch::randn({51, 37});
  torch::manual_seed(12);
  const uint64_t seed = dmdbench::models::compat::draw_seed();
  Tensor mask = torch::empty({51, 37});
  k::dropout_mask(mask.numel(), 0.25f, seed, mask.data_ptr<float>());
  torch::manual_seed(12);
  const Tensor y = ops::dropout(x, 0.25, /*training=*/true);
  EXPECT_TRUE(torch::equal(y, x.detach() * mask));
  EXPECT_TRUE(torch::equal(torch::autograd::grad({y}, {x}, {g})[0], g * mask));
  EXPECT_GT(mask.eq(0).sum().item<int64_t>(), 0);
}

TEST(ModelsOps, LinearAndLinearReluMatchFunctional) {
  torch::manual_seed(4);
  Tensor x = torch::randn({5, 3, 8}).requires_grad_();
  Tensor w = torch::randn({6, 8}).requires_grad_(), b = torch::randn({6}).requires_grad_();
  Tensor want = torch::nn::functional::linear(x, w, b);
  EXPECT_LT(max_abs_diff(ops::linear(x, w, b), want), 1e-6);
  EXPECT_LT(max_abs_diff(ops::linear(x, w), torch::nn::functional::linear(x, w)), 1e-6);
  Tensor r = ops::linear_relu(x, w, b);
  EXPECT_LT(max_abs_diff(r, want.relu()), 1e-6);
  auto g1 = torch::autograd::grad({r.sum()}, {x, w, b});
  auto g2 = torch::autograd::grad({want.relu().sum()}, {x, w, b});
  for (int i = 0; i < 3; ++i) EXPECT_LT(max_abs_diff(g1[i], g2[i]), 1e-5) << i;
}

// The forward fills the bias rows and runs the GEMM with beta = 1 in place: exactly what addmm computes. The bias
// gradient is a column sum in row order.
TEST(ModelsOps, LinearForwardEqualsAddmmExactly) {
  torch::manual_seed(5);
  Tensor x = torch::randn({46, 16, 50}), w = torch::randn({200, 50}), b = torch::randn({200});
  const Tensor want = torch::addmm(b, x.reshape({-1, 50}), w.t()).view({46, 16, 200});
  EXPECT_TRUE(torch::equal(ops::linear(x, w, b), want));
  Tensor bg = b.clone().requires_grad_();
  Tensor g = torch::randn({46, 16, 200});
  auto db = torch::autograd::grad({(ops::linear(x, w, bg) * g).sum()}, {bg})[0];
  EXPECT_LT(max_abs_diff(db, g.reshape({-1, 200}).to(torch::kDouble).sum(0).to(torch::kFloat)), 1e-3);
}

// linear calls the BLAS's sgemm_ itself (no LibTorch op): forward and both gradients must be LibTorch's own
// addmm/mm bit for bit, for the step's shapes (736 rows of 50 features into 50 or 150), a row block, inputs
// whose rows are strided (a column slice), no bias, and shapes with a dimension of 1 (LibTorch's path).
TEST(ModelsOps, LinearGivesLibTorchsProductsBitForBit) {
  struct Case {
    int64_t R, in, out, row0, rows, x_cols;
    bool bias;
  };
  const std::vector<Case> cases = {
      {736, 50, 150, 0, 150, 50, true}, {736, 50, 50, 0, 50, 50, false}, {736, 50, 150, 50, 50, 50, true},
      {96, 30, 40, 0, 40, 64, true},    {1, 30, 40, 0, 40, 30, true},    {16, 30, 1, 0, 1, 30, true},
      {16, 1, 8, 0, 8, 1, true},        {2944, 50, 50, 0, 50, 50, true}, {1000, 150, 50, 0, 50, 160, true},
      {736, 30, 30, 0, 30, 30, true},   {500, 20, 60, 0, 60, 24, false}, {736, 100, 400, 0, 400, 100, true}};
  // The large ones (dW's k = 2944 and 1000 cut in blocks; 736 x 100 x 400) take gemm's kernel where it gives
  // the BLAS's bits, on two threads split by rows (and OpenBLAS, for LibTorch's ops too, on one); elsewhere
  // the BLAS on both. Small ones (736 x 30 x 30, 500 x 20 x 60) take the kernel in one block of k where k <
  // 32 or A is transposed (dW), and the BLAS's small-matrix kernel where not (500 x 60 x 20's dx, k = 60).
  RecordProperty("products", ops::products_kernel());
  const int previous = torch::get_num_threads();
  for (int threads : {1, 2})
    for (const Case& c : cases) {
      dmdbench::set_threads(threads);
      torch::manual_seed(7);
      const Tensor x =
          torch::randn({c.R, c.x_cols}).requires_grad_().narrow(1, 0, c.in);  // stride(0) = x_cols
      const Tensor w = torch::randn({c.out, c.in}).requires_grad_(), b = torch::randn({c.out});
      const Tensor g = torch::randn({c.R, c.rows});
      const Tensor xd = x.detach(), wb = w.detach().narrow(0, c.row0, c.rows);
      const Tensor want =
          c.bias ? torch::addmm(b.narrow(0, c.row0, c.rows), xd, wb.t()) : torch::mm(xd, wb.t());
      const Tensor got = ops::linear(x, w, c.bias ? b : Tensor(), c.row0, c.rows);
      const std::string at = "threads=" + std::to_string(threads) + " R=" + std::to_string(c.R) +
                             " in=" + std::to_string(c.in) + " rows=" + std::to_string(c.rows) +
                             " row0=" + std::to_string(c.row0);
      EXPECT_TRUE(torch::equal(got, want)) << at;
      const auto grads = torch::autograd::grad({got}, {x, w}, {g});
      EXPECT_TRUE(torch::equal(grads[0], g.mm(wb))) << at;
      EXPECT_TRUE(torch::equal(grads[1].narrow(0, c.row0, c.rows), g.t().mm(xd))) << at;
      EXPECT_EQ(grads[1].abs().sum().item<double>(),
                grads[1].narrow(0, c.row0, c.rows).abs().sum().item<double>())
          << at;
    }
  dmdbench::set_threads(previous);
}

// Where gemm's kernel multiplies the linears' products (ops::set_threads keeps the BLAS on one thread and the
// kernel splits the rows), two threads give the one-thread values and gradients bit for bit: a product below
// 2^23 multiply-adds (the kernel at both counts), one above (the BLAS on one thread, the kernel on two), and
// an odd row count whose k is cut in blocks.
TEST(ModelsOps, LinearGivesTheOneThreadBitsOnTwoThreads) {
  if (!ops::products_follow_threads()) {  // another BLAS or OpenBLAS kernel: the BLAS's own threads multiply
    EXPECT_EQ(ops::products_kernel(), "BLAS sgemm");
    return;
  }
  const int previous = torch::get_num_threads();
  struct Case {
    int64_t R, in, out;
  };
  for (const Case& c : {Case{736, 50, 150}, Case{2944, 200, 50}, Case{1001, 50, 64}}) {
    torch::manual_seed(11);
    const Tensor x = torch::randn({c.R, c.in}).requires_grad_(),
                 w = torch::randn({c.out, c.in}).requires_grad_(), b = torch::randn({c.out}).requires_grad_(),
                 g = torch::randn({c.R, c.out});
    std::vector<Tensor> by_threads[2];
    for (int threads : {1, 2}) {
      dmdbench::set_threads(threads);
      const Tensor y = ops::linear(x, w, b);
      const auto grads = torch::autograd::grad({y}, {x, w, b}, {g});
      by_threads[threads - 1] = {y, grads[0], grads[1], grads[2]};
    }
    for (size_t i = 0; i < by_threads[0].size(); ++i)
      EXPECT_TRUE(torch::equal(by_threads[0][i], by_threads[1][i])) << "R=" << c.R << " output " << i;
  }
  dmdbench::set_threads(previous);
}

// Without a gradient to record (evaluation), linear and LayerNorm skip their autograd node and run the same
// computation: the same bits as with the node, and an output without a grad_fn.
TEST(ModelsOps, LinearAndLayerNormWithoutGradGiveTheSameBits) {
  torch::manual_seed(8);
  const Tensor x = torch::randn({46, 16, 50}), w = torch::randn({150, 50}).requires_grad_(),
               b = torch::randn({150}).requires_grad_(), g = torch::randn({50}).requires_grad_(),
               beta = torch::randn({50}).requires_grad_();
  const Tensor y = ops::linear_relu(x, w, b), block = ops::linear(x, w, b, 50, 100),
               n = ops::layer_norm(x, g, beta);
  ASSERT_TRUE(y.requires_grad() && block.requires_grad() && n.requires_grad());
  torch::NoGradGuard no_grad;
  const Tensor y0 = ops::linear_relu(x, w, b), block0 = ops::linear(x, w, b, 50, 100),
               n0 = ops::layer_norm(x, g, beta);
  EXPECT_FALSE(y0.requires_grad() || block0.requires_grad() || n0.requires_grad());
  EXPECT_TRUE(torch::equal(y0, y.detach()));
  EXPECT_TRUE(torch::equal(block0, block.detach()));
  EXPECT_TRUE(torch::equal(n0, n.detach()));
  EXPECT_EQ(block0.sizes(), (std::vector<int64_t>{46, 16, 100}));
}

TEST(ModelsOps, TemporalConvMatchesConv1dValuesAndGradients) {
  for (int64_t k : {1, 3, 5}) {
    torch::manual_seed(5);
    Tensor x = torch::randn({2, 9, 6}).requires_grad_();
    Tensor w = torch::randn({4, 6, k}).requires_grad_();
    Tensor got = ops::temporal_conv(x, w);                              // [N,T',out]
    Tensor want = torch::conv1d(x.transpose(1, 2), w).transpose(1, 2);  // [N,T',out]
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_LT(max_abs_diff(got, want), 1e-5) << "k=" << k;
    Tensor g = torch::randn(want.sizes());
    auto gg = torch::autograd::grad({got}, {x, w}, {g});
    auto gw = torch::autograd::grad({want}, {x, w}, {g});
    EXPECT_LT(max_abs_diff(gg[0], gw[0]), 1e-5) << "k=" << k;
    EXPECT_LT(max_abs_diff(gg[1], gw[1]), 1e-5) << "k=" << k;
  }
}

TEST(ModelsOps, LinearOverARowBlockGivesFullSizeGradients) {
  torch::manual_seed(6);
  Tensor x = torch::randn({4, 2, 5}).requires_grad_();
  Tensor w = torch::randn({9, 5}).requires_grad_(), b = torch::randn({9}).requires_grad_();
  Tensor got = ops::linear(x, w, b, 3, 4);  // rows 3..6
  Tensor want = torch::nn::functional::linear(x, w.narrow(0, 3, 4), b.narrow(0, 3, 4));
  EXPECT_LT(max_abs_diff(got, want), 1e-6);
  Tensor g = torch::randn({4, 2, 4});
  auto gg = torch::autograd::grad({got}, {x, w, b}, {g});
  auto gw = torch::autograd::grad({want}, {x, w, b}, {g});
  for (int i = 0; i < 3; ++i) EXPECT_LT(max_abs_diff(gg[i], gw[i]), 1e-5) << i;
  EXPECT_EQ(gg[1].narrow(0, 0, 3).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(gg[2].narrow(0, 7, 2).abs().sum().item<double>(), 0.0);
}

TEST(ModelsOps, FusedAdamFollowsTorchAdam) {
  for (double wd : {0.0, 0.01}) {
    torch::manual_seed(7);
    std::vector<Tensor> a = {torch::randn({37}).requires_grad_(), torch::randn({5, 9}).requires_grad_()};
    std::vector<Tensor> b = {a[0].detach().clone().requires_grad_(), a[1].detach().clone().requires_grad_()};
    torch::optim::Adam ref(a, torch::optim::AdamOptions(1e-2).weight_decay(wd));
    dmdbench::models::FusedAdam fused(b, torch::optim::AdamOptions(1e-2).weight_decay(wd));
    for (int step = 0; step < 5; ++step) {
      Tensor g0 = torch::randn({37}), g1 = torch::randn({5, 9}) * 1e-3;
      a[0].mutable_grad() = g0.clone(), a[1].mutable_grad() = g1.clone();
      b[0].mutable_grad() = g0.clone(), b[1].mutable_grad() = g1.clone();
      ref.step();
      fused.step();
    }
    for (int i = 0; i < 2; ++i) EXPECT_LT(max_abs_diff(a[i], b[i]), 1e-6) << "wd " << wd << " param " << i;
    // Same state layout as torch::optim::Adam (step count and moments), so save/load and the trainer's
    // learning rate setter keep working.
    EXPECT_EQ(fused.state().size(), 2u);
    for (const auto& [key, st] : fused.state())
      EXPECT_EQ(static_cast<const torch::optim::AdamParamState&>(*st).step(), 5) << key;
  }
}

// The kernels split their work over LibTorch's thread pool; every split writes disjoint outputs or sums in
// the serial order, so two threads must give the one-thread result bit for bit (the reproducibility promise
// holds at any thread count). Sizes are above the kernels' split threshold (kSplitWork); D = 50 has a tail
// past the 8-lane blocks.
TEST(ModelsOps, KernelsGiveTheOneThreadResultOnTwoThreads) {
  namespace k = dmdbench::models::kernels;
  namespace m = dmdbench::models;
  const int previous = torch::get_num_threads();
  auto run = [](int threads) {
    torch::set_num_threads(threads);
    torch::manual_seed(5);
    const int64_t R = 24000, D = 50;
    // every job below is split: the smallest, the column sum, is R x 48 (its 8-lane blocks)
    EXPECT_GE(R * (D / 8 * 8), k::kSplitWork);
    EXPECT_GE(16 * 10 * 50 * 50 * 5, k::kSplitWork);  // the attention: N*H heads of T*S*e
    std::vector<Tensor> out;
    Tensor x = torch::randn({R, D}) * 2 + 1, gamma = torch::randn({D}), beta = torch::randn({D});
    Tensor y = torch::empty({R, D}), mean = torch::empty({R}), rstd = torch::empty({R});
    k::layer_norm_forward(R, D, x.data_ptr<float>(), gamma.data_ptr<float>(), beta.data_ptr<float>(), 1e-5f,
                          y.data_ptr<float>(), mean.data_ptr<float>(), rstd.data_ptr<float>());
    Tensor dy = torch::randn({R, D}), dx = torch::empty({R, D}), dg = torch::empty({D}),
           db = torch::empty({D});
    k::layer_norm_backward(R, D, x.data_ptr<float>(), gamma.data_ptr<float>(), mean.data_ptr<float>(),
                           rstd.data_ptr<float>(), dy.data_ptr<float>(), dx.data_ptr<float>(),
                           dg.data_ptr<float>(), db.data_ptr<float>());
    Tensor cs = torch::empty({D});
    k::column_sum(R, D, dy.data_ptr<float>(), cs.data_ptr<float>());
    Tensor mask = torch::empty({R * D + 3});
    k::dropout_mask(mask.numel(), 0.3f, 77, mask.data_ptr<float>());
    Tensor p = torch::randn({R * D + 5}), g = torch::randn({R * D + 5}), m1 = torch::zeros({R * D + 5}),
           v1 = torch::zeros({R * D + 5});
    k::AdamStep s;
    s.bias_correction1 = 0.1, s.bias_correction2 = 0.001, s.weight_decay = 0.01;
    k::adam_update(s, p.numel(), p.data_ptr<float>(), g.data_ptr<float>(), m1.data_ptr<float>(),
                   v1.data_ptr<float>());
    Tensor c = torch::randn({R * D + 7}) * 3;
    k::clamp(c.numel(), -1.0f, 1.0f, c.data_ptr<float>());
    // attention with the band and dropout, values and gradients: T = S = 50, N = 16, 10 heads of 5
    Tensor q = torch::randn({50, 16, 50}).requires_grad_(), kk = torch::randn({50, 16, 50}).requires_grad_(),
           vv = torch::randn({50, 16, 50}).requires_grad_();
    Tensor a = m::attention_core(q, kk, vv, 10, true, 0.2, true, m::AttentionImpl::Fused);
    auto grads = torch::autograd::grad({a}, {q, kk, vv}, {torch::randn({50, 16, 50})});
    out = {y, mean, rstd, dx, dg, db, cs, mask, p, m1, v1, c, a.detach(), grads[0], grads[1], grads[2]};
    return out;
  };
  const auto one = run(1), two = run(2);
  torch::set_num_threads(previous);
  const char* names[] = {"LN y",       "LN mean", "LN rstd", "LN dx",  "LN dgamma", "LN dbeta",
                         "column sum", "dropout", "Adam p",  "Adam m", "Adam v",    "clamp",
                         "attention",  "dq",      "dk",      "dv"};
  ASSERT_EQ(one.size(), two.size());
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(torch::equal(one[i], two[i])) << names[i];
}

// OpenBLAS's Prescott fallback (a CPU newer than the library) is replaced by the kernels it gives the CPUs it
// knows with the same instructions, and on an AVX-512 CPU any set but its AVX-512 ones by SkylakeX (Zen 4,
// which 0.3.21 gives its Zen kernels); a CPU with AVX2 only keeps the set OpenBLAS chose for it, and a CPU
// without AVX2
// + FMA keeps Prescott.
TEST(ModelsOps, OpenBlasFallbackIsReplacedByTheKernelsOfTheSameInstructions) {
  namespace bc = dmdbench::models::blas_core;
  EXPECT_EQ(bc::to_request("Prescott", true, true), "SkylakeX");
  EXPECT_EQ(bc::to_request("Prescott", false, true), "Haswell");
  EXPECT_EQ(bc::to_request("Prescott", false, false), "");
  EXPECT_EQ(bc::to_request("Zen", true, true), "SkylakeX");
  EXPECT_EQ(bc::to_request("Haswell", true, true), "SkylakeX");
  EXPECT_EQ(bc::to_request("Zen", false, true), "");
  EXPECT_EQ(bc::to_request("Haswell", false, true), "");
  EXPECT_EQ(bc::to_request("SkylakeX", true, true), "");
  EXPECT_EQ(bc::to_request("Cooperlake", true, true), "");
  EXPECT_EQ(bc::to_request("", true, true), "");  // no OpenBLAS: nothing to ask
  // Debian's LibTorch runs on OpenBLAS (the design card), which names its kernels.
  EXPECT_FALSE(bc::loaded().empty());
  EXPECT_EQ(bc::describe().rfind("openblas=" + bc::loaded(), 0), 0u) << bc::describe();
}
