// MulT/fairseq transformer pieces: positions, band mask, the fused attention kernel against the ATen path and
// a direct loop, the encoder's names, last-step and key/value-sharing shortcuts.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <set>
#include <string>

#include "models/compat.h"
#include "models/cpu_features.h"
#include "models/dmd.h"
#include "models/kernels.h"
#include "models/state_dict.h"
#include "models/transformer.h"

namespace m = dmdbench::models;
using torch::Tensor;

namespace {

double max_abs_diff(const Tensor& a, const Tensor& b) {
  return (a - b).abs().max().item<double>();
}

}  // namespace

TEST(ModelsTransformer, SinusoidalTableIsSinesThenCosinesWithZeroPaddingRow) {
  // d = 4: half = 2, w = [1, exp(-ln(10000))] = [1, 1e-4]; row p = [sin(p), sin(p/1e4), cos(p), cos(p/1e4)].
  Tensor t = m::sinusoidal_table(4, 4);
  ASSERT_EQ(t.sizes(), torch::IntArrayRef({4, 4}));
  EXPECT_EQ(t[0].abs().sum().item<double>(), 0.0);
  for (int p = 1; p < 4; ++p) {
    EXPECT_NEAR(t[p][0].item<double>(), std::sin(p * 1.0), 1e-6);
    EXPECT_NEAR(t[p][1].item<double>(), std::sin(p * 1e-4), 1e-6);
    EXPECT_NEAR(t[p][2].item<double>(), std::cos(p * 1.0), 1e-6);
    EXPECT_NEAR(t[p][3].item<double>(), std::cos(p * 1e-4), 1e-6);
  }
  // d = 7: half = 3, w_i = 10000^(-i/2); one zero column appended.
  Tensor u = m::sinusoidal_table(3, 7);
  ASSERT_EQ(u.size(1), 7);
  EXPECT_NEAR(u[2][1].item<double>(), std::sin(2.0 * std::pow(10000.0, -0.5)), 1e-6);
  EXPECT_NEAR(u[2][5].item<double>(), std::cos(2.0 * std::pow(10000.0, -1.0)), 1e-6);
  EXPECT_EQ(u.select(1, 6).abs().sum().item<double>(), 0.0);
}

TEST(ModelsTransformer, PositionIndexDependsOnChannelZeroOnly) {
  // x_in [T=3, N=2, d=4]; sample 0 has channel 0 == 0 at t = 0 and t = 2 (other channels non-zero).
  Tensor x = torch::ones({3, 2, 4});
  x.index_put_({0, 0, 0}, 0.0);
  x.index_put_({2, 0, 0}, 0.0);
  x.index_put_({1, 1, 3}, 0.0);  // another channel being zero changes nothing
  Tensor pe = m::sinusoidal_positions(x);
  Tensor table = m::sinusoidal_table(4, 4);
  EXPECT_EQ(pe[0][0].abs().sum().item<double>(), 0.0);
  EXPECT_TRUE(torch::equal(pe[1][0], table[2]));
  EXPECT_EQ(pe[2][0].abs().sum().item<double>(), 0.0);
  for (int t = 0; t < 3; ++t) EXPECT_TRUE(torch::equal(pe[t][1], table[t + 1])) << "t=" << t;
}

TEST(ModelsTransformer, TimeMajorInputsDealBatchMajorPositionsInTimeMajorOrder) {
  // T=5, N=2; padded (channel 0 == 0) at (t0,n0) and (t1,n1). Batch-major list of kept positions:
  // n0: 2,3,4,5; n1: 1,3,4,5. Dealt to the kept slots in time-major order:
  // (t0,n1)=2 (t1,n0)=3 (t2,n0)=4 (t2,n1)=5 (t3,n0)=1 (t3,n1)=3 (t4,n0)=4 (t4,n1)=5.
  Tensor x = torch::ones({5, 2, 4});
  x.index_put_({0, 0, 0}, 0.0);
  x.index_put_({1, 1, 0}, 0.0);
  Tensor time_major = m::position_indices(x, m::PositionLayout::TimeMajor);
  EXPECT_TRUE(
      torch::equal(time_major, torch::tensor({0, 2, 3, 0, 4, 5, 1, 3, 4, 5}, torch::kLong).view({5, 2})));
  Tensor batch_major = m::position_indices(x, m::PositionLayout::BatchMajor);
  EXPECT_TRUE(
      torch::equal(batch_major, torch::tensor({0, 1, 2, 0, 3, 3, 4, 4, 5, 5}, torch::kLong).view({5, 2})));
  // Without padding, slot (t,n) gets ((t*N + n) mod T) + 1.
  Tensor full = m::position_indices(torch::ones({3, 2, 1}), m::PositionLayout::TimeMajor);
  EXPECT_TRUE(torch::equal(full, torch::tensor({1, 2, 3, 1, 2, 3}, torch::kLong).view({3, 2})));
  // The embedding follows the indices.
  Tensor pe = m::sinusoidal_positions(x, m::PositionLayout::TimeMajor);
  Tensor table = m::sinusoidal_table(6, 4);
  EXPECT_TRUE(torch::equal(pe[3][0], table[1]));
  EXPECT_EQ(pe[1][1].abs().sum().item<double>(), 0.0);
}

TEST(ModelsTransformer, EncoderEmbeddingIsScaledInputPlusPositions) {
  // With no layers the encoder is LayerNorm(sqrt(d) * x + PE(x)); with PE off, LayerNorm(sqrt(d) * x).
  m::TransformerEncoderOptions o;
  o.embed_dim = 4, o.heads = 2, o.layers = 0;
  torch::manual_seed(3);
  Tensor x = torch::randn({5, 2, 4});
  x.index_put_({1, 0, 0}, 0.0);
  for (auto layout : {m::PositionLayout::BatchMajor, m::PositionLayout::TimeMajor}) {
    o.position_layout = layout;
    m::TransformerEncoder enc(o);
    enc->eval();
    Tensor expected = torch::layer_norm(x * 2.0 + m::sinusoidal_positions(x, layout), {4});
    EXPECT_LT(max_abs_diff(enc->forward(x), expected), 1e-6);
  }
  o.position_embedding = false;
  m::TransformerEncoder plain(o);
  plain->eval();
  EXPECT_LT(max_abs_diff(plain->forward(x), torch::layer_norm(x * 2.0, {4})), 1e-6);
}

TEST(ModelsTransformer, FutureMaskShiftsByLengthDifference) {
  const float inf = std::numeric_limits<float>::infinity();
  // Lq = 3, Lk = 5: offset 1 + 2 = 3, (i,j) masked iff j - i >= 3.
  Tensor a = m::future_mask(3, 5);
  Tensor ea = torch::tensor({0.f, 0.f, 0.f, -inf, -inf, 0.f, 0.f, 0.f, 0.f, -inf, 0.f, 0.f, 0.f, 0.f, 0.f})
                  .view({3, 5});
  EXPECT_TRUE(torch::equal(a, ea));
  // Lq = 5, Lk = 3: offset 3 and j - i <= 2, nothing masked.
  EXPECT_EQ(m::future_mask(5, 3).abs().sum().item<double>(), 0.0);
  // Equal lengths: the standard causal mask.
  Tensor c = m::future_mask(3, 3);
  Tensor ec = torch::tensor({0.f, -inf, -inf, 0.f, 0.f, -inf, 0.f, 0.f, 0.f}).view({3, 3});
  EXPECT_TRUE(torch::equal(c, ec));
}

TEST(ModelsTransformer, FusedAttentionMatchesDirectLoop) {
  // Direct transcription for T=3, S=5, N=2, H=2, e=2 with the band mask, in double precision.
  torch::manual_seed(11);
  const int64_t T = 3, S = 5, N = 2, H = 2, E = 2, d = H * E;
  Tensor q = torch::randn({T, N, d}), k = torch::randn({S, N, d}), v = torch::randn({S, N, d});
  Tensor got = m::attention_core(q, k, v, H, /*band=*/true, 0.0, false, m::AttentionImpl::Fused);
  auto qa = q.accessor<float, 3>(), ka = k.accessor<float, 3>(), va = v.accessor<float, 3>();
  const double scaling = 1.0 / std::sqrt(static_cast<double>(E));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> s(S);
        double mx = -1e300;
        for (int64_t j = 0; j < S; ++j) {
          double dot = 0;
          for (int64_t e = 0; e < E; ++e) dot += qa[i][n][h * E + e] * scaling * ka[j][n][h * E + e];
          s[j] = (j - i >= 1 + (S - T)) ? -1e300 : dot;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (auto& x : s) sum += (x = (x < -1e299 ? 0.0 : std::exp(x - mx)));
        for (int64_t e = 0; e < E; ++e) {
          double o = 0;
          for (int64_t j = 0; j < S; ++j) o += s[j] / sum * va[j][n][h * E + e];
          EXPECT_NEAR(got[i][n][h * E + e].item<double>(), o, 1e-5) << n << h << i << e;
        }
      }
    }
  }
}

TEST(ModelsTransformer, FusedAttentionMatchesReferenceValuesAndGradients) {
  struct Case {
    int64_t T, S, N, H, d;
  };
  for (const Case& c :
       {Case{46, 46, 4, 10, 50}, Case{46, 50, 3, 6, 30}, Case{50, 48, 3, 6, 60}, Case{7, 4, 2, 2, 8},
        Case{9, 9, 2, 3, 12}, Case{11, 13, 2, 2, 16}, Case{13, 10, 2, 2, 32}, Case{5, 17, 3, 1, 3}}) {
    for (bool band : {true, false}) {
      torch::manual_seed(5);
      // q, k, v as strided chunks of one projection, like the module passes them.
      Tensor base = torch::randn({c.T, c.N, 3 * c.d}).requires_grad_();
      Tensor kvb = torch::randn({c.S, c.N, 2 * c.d}).requires_grad_();
      auto run = [&](m::AttentionImpl impl) {
        Tensor q = base.narrow(2, 0, c.d);
        auto kv = kvb.chunk(2, -1);
        return m::attention_core(q, kv[0], kv[1], c.H, band, 0.0, true, impl);
      };
      Tensor g = torch::randn({c.T, c.N, c.d});
      Tensor of = run(m::AttentionImpl::Fused), orf = run(m::AttentionImpl::Reference);
      EXPECT_LT(max_abs_diff(of, orf), 2e-6) << c.T << "x" << c.S << " band " << band;
      auto gf = torch::autograd::grad({of}, {base, kvb}, {g});
      auto gr = torch::autograd::grad({orf}, {base, kvb}, {g});
      EXPECT_LT(max_abs_diff(gf[0], gr[0]), 1e-5) << c.T << "x" << c.S;
      EXPECT_LT(max_abs_diff(gf[1], gr[1]), 1e-5) << c.T << "x" << c.S;
    }
  }
}

TEST(ModelsTransformer, FusedAttentionDropoutFollowsItsMaskForwardAndBackward) {
  const int64_t T = 6, S = 8, N = 3, H = 2, d = 8, E = 4;
  const double p = 0.3;
  torch::manual_seed(21);
  Tensor q = torch::randn({T, N, d}).requires_grad_(), k = torch::randn({S, N, d}).requires_grad_(),
         v = torch::randn({S, N, d}).requires_grad_();
  torch::manual_seed(77);
  const uint64_t seed = m::compat::draw_seed();  // what the kernel will draw after the same manual_seed
  torch::manual_seed(77);
  Tensor got = m::attention_core(q, k, v, H, true, p, /*training=*/true, m::AttentionImpl::Fused);

  // The same computation with ATen ops and the kernel's keep decisions as an explicit mask.
  m::kernels::AttentionProblem pb;
  pb.tgt_len = T, pb.src_len = S, pb.batch = N, pb.heads = H, pb.head_dim = E;
  pb.band_offset = S - T, pb.dropout_p = static_cast<float>(p), pb.seed = seed;
  Tensor keep = torch::zeros({N * H, T, S});
  for (int64_t b = 0; b < N * H; ++b)
    for (int64_t i = 0; i < T; ++i)
      for (int64_t j = 0; j < S; ++j)
        keep.index_put_({b, i, j}, m::kernels::attention_dropout_keep(pb, b, i, j) ? 1.0 : 0.0);
  Tensor qh = (q * (1.0 / std::sqrt(4.0))).reshape({T, N * H, E}).transpose(0, 1);
  Tensor kh = k.reshape({S, N * H, E}).transpose(0, 1), vh = v.reshape({S, N * H, E}).transpose(0, 1);
  Tensor probs = torch::softmax(torch::baddbmm(m::future_mask(T, S), qh, kh.transpose(1, 2)), -1);
  Tensor expected = torch::bmm(probs * keep / (1.0 - p), vh).transpose(0, 1).reshape({T, N, d});
  EXPECT_LT(max_abs_diff(got, expected), 2e-6);
  EXPECT_GT(keep.sum().item<double>(), 0.0);
  EXPECT_LT(keep.sum().item<double>(), keep.numel());

  Tensor g = torch::randn({T, N, d});
  auto gf = torch::autograd::grad({got}, {q, k, v}, {g});
  auto ge = torch::autograd::grad({expected}, {q, k, v}, {g});
  for (int i = 0; i < 3; ++i) EXPECT_LT(max_abs_diff(gf[i], ge[i]), 1e-5) << "input " << i;
}

TEST(ModelsTransformer, FusedAttentionDropoutRateAndSeedDependence) {
  m::kernels::AttentionProblem pb;
  pb.tgt_len = 50, pb.src_len = 50, pb.batch = 16, pb.heads = 10, pb.head_dim = 5;
  pb.dropout_p = 0.3f, pb.seed = 12345;
  int64_t kept = 0, total = 0, differs = 0;
  m::kernels::AttentionProblem other = pb;
  other.seed = 54321;
  for (int64_t b = 0; b < 160; ++b)
    for (int64_t i = 0; i < 50; ++i)
      for (int64_t j = 0; j < 50; ++j) {
        const bool a = m::kernels::attention_dropout_keep(pb, b, i, j);
        kept += a;
        differs += a != m::kernels::attention_dropout_keep(other, b, i, j);
        ++total;
      }
  const double rate = static_cast<double>(kept) / total;  // 400k draws: sd of the rate ~ 0.0007
  EXPECT_NEAR(rate, 0.7, 0.005);
  EXPECT_NEAR(static_cast<double>(differs) / total, 2 * 0.7 * 0.3, 0.01);  // independent masks
}

TEST(ModelsTransformer, EncoderParameterNamesFollowTheReference) {
  m::TransformerEncoderOptions o;
  o.embed_dim = 30, o.heads = 6, o.layers = 2;
  m::TransformerEncoder enc(o);
  std::vector<std::string> names;
  for (const auto& [name, t] : m::state_dict(*enc)) names.push_back(name + std::to_string(t.dim()));
  const std::vector<std::string> layer = {"self_attn.in_proj_weight2",
                                          "self_attn.in_proj_bias1",
                                          "self_attn.out_proj.weight2",
                                          "self_attn.out_proj.bias1",
                                          "fc1.weight2",
                                          "fc1.bias1",
                                          "fc2.weight2",
                                          "fc2.bias1",
                                          "layer_norms.0.weight1",
                                          "layer_norms.0.bias1",
                                          "layer_norms.1.weight1",
                                          "layer_norms.1.bias1"};
  std::vector<std::string> expected = {"version1", "embed_positions._float_tensor1"};
  for (const char* i : {"0", "1"})
    for (const auto& n : layer) expected.push_back(std::string("layers.") + i + "." + n);
  expected.push_back("layer_norm.weight1");
  expected.push_back("layer_norm.bias1");
  EXPECT_EQ(names, expected);
  // Per layer 4d^2+4d (attention) + 8d^2+5d (feed-forward) + 4d (norms); plus the final norm.
  EXPECT_EQ(m::count_parameters(*enc), 2 * (12 * 30 * 30 + 13 * 30) + 2 * 30);
}

TEST(ModelsTransformer, ReferenceInitialisation) {
  m::TransformerEncoderOptions o;
  o.embed_dim = 40, o.heads = 4, o.layers = 1;
  torch::manual_seed(1);
  m::TransformerEncoder enc(o);
  auto sd = m::state_dict(*enc);
  auto get = [&](const std::string& n) {
    for (auto& [k, t] : sd)
      if (k == n) return t;
    ADD_FAILURE() << "no " << n;
    return Tensor();
  };
  const double d = 40;
  EXPECT_LE(get("layers.0.self_attn.in_proj_weight").abs().max().item<double>(), std::sqrt(6.0 / (4 * d)));
  EXPECT_GT(get("layers.0.self_attn.in_proj_weight").abs().max().item<double>(),
            0.9 * std::sqrt(6.0 / (4 * d)));
  EXPECT_LE(get("layers.0.fc1.weight").abs().max().item<double>(), std::sqrt(6.0 / (5 * d)));
  EXPECT_GT(get("layers.0.fc1.weight").abs().max().item<double>(), 0.9 * std::sqrt(6.0 / (5 * d)));
  for (const char* b :
       {"layers.0.self_attn.in_proj_bias", "layers.0.self_attn.out_proj.bias", "layers.0.fc1.bias",
        "layers.0.fc2.bias", "layers.0.layer_norms.0.bias", "layer_norm.bias"})
    EXPECT_EQ(get(b).abs().sum().item<double>(), 0.0) << b;
  EXPECT_TRUE(torch::equal(get("layers.0.layer_norms.1.weight"), torch::ones({40})));
  EXPECT_EQ(get("version").item<float>(), 2.0f);
}

TEST(ModelsTransformer, LastOnlyEqualsLastRowOfFullOutput) {
  for (bool cross : {false, true}) {
    m::TransformerEncoderOptions o;
    o.embed_dim = 12, o.heads = 3, o.layers = 3, o.attn_mask = true;
    torch::manual_seed(8);
    m::TransformerEncoder enc(o);
    Tensor x = torch::randn({7, 2, 12}).requires_grad_();
    Tensor kv = torch::randn({9, 2, 12}).requires_grad_();
    Tensor full = cross ? enc->forward(x, kv, kv) : enc->forward(x);
    Tensor last = cross ? enc->forward(x, kv, kv, true) : enc->forward(x, {}, {}, true);
    ASSERT_EQ(last.sizes(), torch::IntArrayRef({2, 12}));
    EXPECT_LT(max_abs_diff(full[-1], last), 1e-5);
    std::vector<Tensor> inputs = cross ? std::vector<Tensor>{x, kv} : std::vector<Tensor>{x};
    auto gf = torch::autograd::grad({full[-1].sum()}, inputs);
    auto gl = torch::autograd::grad({last.sum()}, inputs);
    for (size_t i = 0; i < inputs.size(); ++i) EXPECT_LT(max_abs_diff(gf[i], gl[i]), 1e-5);
  }
}

TEST(ModelsTransformer, SharedKeyValueShortcutEqualsSeparateProjections) {
  m::TransformerEncoderOptions o;
  o.embed_dim = 12, o.heads = 3, o.layers = 2, o.attn_mask = true;
  torch::manual_seed(9);
  m::TransformerEncoder enc(o);
  enc->eval();
  Tensor x = torch::randn({6, 2, 12}), kv = torch::randn({4, 2, 12});
  Tensor shared = enc->forward(x, kv, kv);            // same tensor: one fused k/v projection
  Tensor separate = enc->forward(x, kv, kv.clone());  // equal values, separate projections
  EXPECT_LT(max_abs_diff(shared, separate), 1e-6);
  // Fused and reference attention give the same encoder output.
  enc->set_attention_impl(m::AttentionImpl::Reference);
  EXPECT_LT(max_abs_diff(shared, enc->forward(x, kv, kv)), 1e-5);
}

TEST(ModelsTransformer, EmbeddingDropoutDrawsSeparateMasksForKeysAndValues) {
  // Only embedding dropout active, ones as input: key and value embeddings must differ when the masks do.
  m::TransformerEncoderOptions o;
  o.embed_dim = 8, o.heads = 2, o.layers = 1, o.embed_dropout = 0.5;
  m::TransformerEncoder enc(o);
  enc->train();
  torch::manual_seed(40);
  Tensor x = torch::randn({5, 3, 8}), kv = torch::randn({5, 3, 8});
  torch::manual_seed(4);
  Tensor a = enc->forward(x, kv, kv);
  // A distinct value tensor of equal content necessarily gets its own mask (query, key, value drawn in that
  // order). The same seed must reproduce it when key and value are one tensor, so that path draws two masks
  // too.
  torch::manual_seed(4);
  Tensor b = enc->forward(x, kv, kv.clone());
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-6));
  enc->eval();
  Tensor c = enc->forward(x, kv, kv);
  EXPECT_GT(max_abs_diff(a, c), 1e-3);  // dropout changed something in train mode
}

// For long sequences the backward recomputes each block's probabilities from q, k and the rows' saved max and
// 1/sum instead of keeping them (O(T) instead of O(T*S) memory): outputs and gradients bit-identical to the
// saving path, with the band mask and dropout.
TEST(ModelsTransformer, RecomputedAttentionProbabilitiesGiveBitIdenticalGradients) {
  struct Case {
    int64_t T, S, N, H, d;
  };
  for (const Case& c :
       {Case{46, 50, 3, 10, 50}, Case{13, 10, 2, 2, 32}, Case{5, 17, 3, 1, 3}, Case{9, 9, 2, 3, 12}})
    for (bool band : {true, false})
      for (double p : {0.0, 0.25}) {
        torch::manual_seed(9);
        Tensor q = torch::randn({c.T, c.N, c.d}).requires_grad_(),
               k = torch::randn({c.S, c.N, c.d}).requires_grad_(),
               v = torch::randn({c.S, c.N, c.d}).requires_grad_();
        Tensor g = torch::randn({c.T, c.N, c.d});
        auto run = [&](m::AttentionImpl impl) {
          torch::manual_seed(4);  // the same dropout seed for both
          Tensor o = m::attention_core(q, k, v, c.H, band, p, /*training=*/true, impl);
          auto grads = torch::autograd::grad({o}, {q, k, v}, {g});
          grads.insert(grads.begin(), o.detach());
          return grads;
        };
        const auto saved = run(m::AttentionImpl::Fused), recomputed = run(m::AttentionImpl::FusedRecompute);
        for (size_t i = 0; i < saved.size(); ++i)
          EXPECT_TRUE(torch::equal(saved[i], recomputed[i]))
              << c.T << "x" << c.S << " band " << band << " p " << p << " tensor " << i;
      }
  // The rule: saved probabilities above kSavedProbsLimitBytes are recomputed (MOSI vision, unaligned, batch
  // 16).
  m::kernels::AttentionProblem pb;
  pb.tgt_len = 500, pb.src_len = 500, pb.batch = 16, pb.heads = 10, pb.head_dim = 5;
  EXPECT_TRUE(m::kernels::recompute_pays(pb));
  pb.recompute = true;
  EXPECT_EQ(m::kernels::probs_size(pb), 16 * 10 * 63 * 2 * 8);  // ceil(500/8) = 63 blocks, max and 1/sum
  pb.tgt_len = 50, pb.src_len = 50, pb.recompute = false;       // aligned: kept (16*10*56*50*4 B = 1.8 MB)
  EXPECT_FALSE(m::kernels::recompute_pays(pb));
  EXPECT_EQ(m::kernels::probs_size(pb), 16 * 10 * 7 * 50 * 8);
}

// Where the CPU has AVX-512 the attention runs pairs of 8-row blocks in 16 lanes where it recomputes the
// probabilities (kernels.h); each lane does what it does in its 8-lane block, so values and gradients equal
// the 8-lane kernel's bit for bit: head dims with a fixed size (5, 8, 10, 16) and a runtime one (7, always 8
// lanes), odd and even block counts, the band with more keys than queries and fewer, dropout off, on and
// total; with saved probabilities (8 lanes either way) too.
TEST(ModelsTransformer, WideRowsGiveTheEightLaneBits) {
  struct Case {
    int64_t T, S, N, H, d;
  };
  EXPECT_EQ(m::kernels::attention_wide_rows(), m::cpu::has_avx512());
  RecordProperty("wide_rows", m::kernels::attention_wide_rows() ? "on (AVX-512)" : "off (no AVX-512)");
  for (const Case& c : {Case{50, 50, 3, 10, 50}, Case{37, 29, 2, 4, 32}, Case{17, 33, 2, 3, 30},
                        Case{16, 16, 2, 2, 32}, Case{25, 25, 2, 3, 21}, Case{9, 40, 2, 10, 50}})
    for (bool band : {true, false})
      for (double p : {0.0, 0.25, 1.0})
        for (m::AttentionImpl impl : {m::AttentionImpl::Fused, m::AttentionImpl::FusedRecompute}) {
          torch::manual_seed(11);
          Tensor q = torch::randn({c.T, c.N, c.d}).requires_grad_(),
                 k = torch::randn({c.S, c.N, c.d}).requires_grad_(),
                 v = torch::randn({c.S, c.N, c.d}).requires_grad_();
          Tensor g = torch::randn({c.T, c.N, c.d});
          auto run = [&](bool wide) {
            m::kernels::set_attention_wide_rows(wide);
            torch::manual_seed(4);  // the same dropout seed for both
            Tensor o = m::attention_core(q, k, v, c.H, band, p, /*training=*/true, impl);
            auto grads = torch::autograd::grad({o}, {q, k, v}, {g});
            grads.insert(grads.begin(), o.detach());
            return grads;
          };
          const auto wide = run(true), narrow = run(false);
          m::kernels::set_attention_wide_rows(true);
          for (size_t i = 0; i < wide.size(); ++i)
            EXPECT_TRUE(torch::equal(wide[i], narrow[i]))
                << c.T << "x" << c.S << " E " << c.d / c.H << " band " << band << " p " << p << " impl "
                << static_cast<int>(impl) << " tensor " << i;
        }
}
