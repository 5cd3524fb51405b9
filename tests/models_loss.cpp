// Loss terms and the graph-distillation unit against hand computations and direct transcriptions.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "models/dmd.h"
#include "models/graph_distill.h"
#include "models/loss.h"

namespace m = dmdbench::models;
using torch::Tensor;

namespace {

// Line-by-line transcription of the reference HingeLoss (trains/singleTask/HingeLoss.py), loop over anchors.
Tensor hinge_loss_transcription(const Tensor& ids_in, const Tensor& feats) {
  const int64_t B = feats.size(0), F = feats.size(1);
  Tensor ids = ids_in.reshape({B, 1});
  Tensor s = feats.repeat({1, B}).view({-1, F});
  Tensor s_ids = ids.view({B, 1}).repeat({1, B});
  Tensor t = feats.repeat({B, 1});
  Tensor t_ids = ids.view({1, B}).repeat({B, 1});
  auto norm = [](const Tensor& x) {
    Tensor n = torch::sqrt(torch::sum(torch::pow(x, 2), 1) + 1e-8);
    return torch::max(n, 1e-8 * torch::ones_like(n));
  };
  Tensor cosine = torch::sum(s * t, 1) / (norm(s) * norm(t));
  Tensor keep = torch::eye(B, torch::kBool).logical_not();
  s_ids = s_ids.masked_select(keep).view({B, B - 1});
  t_ids = t_ids.masked_select(keep).view({B, B - 1});
  cosine = cosine.view({B, B}).masked_select(keep).view({B, B - 1});
  Tensor sim_mask = s_ids.eq(t_ids);
  Tensor margin = 0.15 * (s_ids - t_ids).abs();
  Tensor loss = torch::zeros({});
  int64_t loss_num = 0;
  for (int64_t i = 0; i < B; ++i) {
    const int64_t sim_num = sim_mask[i].sum().item<int64_t>();
    const int64_t dif_num = B - 1 - sim_num;
    if (!sim_num || !dif_num) continue;
    Tensor sim_cos = cosine[i].masked_select(sim_mask[i]).reshape({-1, 1}).repeat({1, dif_num});
    Tensor dif_cos =
        cosine[i].masked_select(sim_mask[i].logical_not()).reshape({-1, 1}).repeat({1, sim_num}).t();
    Tensor t_margin =
        margin[i].masked_select(sim_mask[i].logical_not()).reshape({-1, 1}).repeat({1, sim_num}).t();
    loss = loss + torch::max(torch::zeros_like(sim_cos), t_margin - sim_cos + dif_cos).mean();
    ++loss_num;
  }
  return loss / static_cast<double>(loss_num == 0 ? 1 : loss_num);
}

// The reference's row layout: [c_l(i), c_v(i), c_a(i)] interleaved per sample, each row with its label.
Tensor interleave(const Tensor& l, const Tensor& v, const Tensor& a) {
  return torch::stack({l, v, a}, 1).reshape({3 * l.size(0), -1});
}

}  // namespace

TEST(ModelsLoss, MarginLossThreeSamplesMatchesTranscription) {
  torch::manual_seed(2);
  Tensor l = torch::randn({3, 4}), v = torch::randn({3, 4}), a = torch::randn({3, 4});
  Tensor y = torch::tensor({1.0f, 1.0f, -0.5f});
  Tensor got = m::margin_loss(l, v, a, y);
  Tensor want = hinge_loss_transcription(y.repeat_interleave(3), interleave(l, v, a));
  EXPECT_NEAR(got.item<double>(), want.item<double>(), 1e-6);
  EXPECT_GT(got.item<double>(), 0.0);
}

TEST(ModelsLoss, MarginLossBatchOf16ValuesAndGradients) {
  torch::manual_seed(3);
  Tensor l = torch::randn({16, 6}).requires_grad_(), v = torch::randn({16, 6}).requires_grad_(),
         a = torch::randn({16, 6}).requires_grad_();
  // Labels on the MOSI grid with repeats and exact zeros.
  Tensor y = torch::tensor(
      {0.0f, 1.0f, -2.0f, 0.0f, 1.0f, 0.6f, -1.4f, 3.0f, 0.0f, 0.6f, -2.0f, 2.2f, 1.0f, -0.4f, -0.4f, 0.0f});
  Tensor got = m::margin_loss(l, v, a, y);
  Tensor want = hinge_loss_transcription(y.repeat_interleave(3), interleave(l, v, a));
  EXPECT_NEAR(got.item<double>(), want.item<double>(), 1e-6);
  auto gg = torch::autograd::grad({got}, {l, v, a});
  auto gw = torch::autograd::grad({want}, {l, v, a});
  for (int i = 0; i < 3; ++i) EXPECT_LT((gg[i] - gw[i]).abs().max().item<double>(), 1e-6) << i;
}

TEST(ModelsLoss, MarginLossLargeBatchUsesAnchorBlocks) {
  // 3N = 600 rows: the [a,p,q] cube is processed in blocks of anchors.
  torch::manual_seed(4);
  const int64_t N = 200;
  Tensor l = torch::randn({N, 5}), v = torch::randn({N, 5}), a = torch::randn({N, 5});
  Tensor y = torch::randint(-3, 4, {N}).to(torch::kFloat) / 3.0;
  Tensor got = m::margin_loss(l, v, a, y);
  Tensor want = hinge_loss_transcription(y.repeat_interleave(3), interleave(l, v, a));
  EXPECT_NEAR(got.item<double>(), want.item<double>(), 1e-5 * std::max(1.0, want.item<double>()));
}

TEST(ModelsLoss, MarginLossWithoutNegativesIsZero) {
  torch::manual_seed(5);
  Tensor l = torch::randn({4, 3}), v = torch::randn({4, 3}), a = torch::randn({4, 3});
  EXPECT_EQ(m::margin_loss(l, v, a, torch::full({4}, 0.5f)).item<double>(), 0.0);
}

TEST(ModelsLoss, OrthoLegacyVersusPerPositionOnHandValues) {
  // s, c [T'=1, N=2, d=2]: s = [[1,2],[3,-1]], c = [[2,0],[1,1]].
  Tensor s = torch::tensor({1.0f, 2.0f, 3.0f, -1.0f}).view({1, 2, 2});
  Tensor c = torch::tensor({2.0f, 0.0f, 1.0f, 1.0f}).view({1, 2, 2});
  // Legacy: per channel k, cosine across the batch. k=0: (1,3).(2,1) = 5 / (sqrt(10) sqrt(5)) = 1/sqrt(2);
  // k=1: (2,-1).(0,1) = -1 -> hinge 0. Mean over (t,k) = 1/(2 sqrt(2)).
  EXPECT_NEAR(m::ortho_loss(s, c, false).item<double>(), 1.0 / (2.0 * std::sqrt(2.0)), 1e-6);
  // Per position: n=0: (1,2).(2,0) = 2 / (sqrt(5) 2); n=1: (3,-1).(1,1) = 2 / (sqrt(10) sqrt(2)); both
  // 1/sqrt(5).
  EXPECT_NEAR(m::ortho_loss(s, c, true).item<double>(), 1.0 / std::sqrt(5.0), 1e-6);
}

TEST(ModelsLoss, GraphDistillPriorsAndParameterCounts) {
  const auto homo = m::GraphDistillConfig::homo(50), hetero = m::GraphDistillConfig::hetero(50);
  const double eh = std::exp(4.0), small = 1.0 / (4 + 2 * eh), big = eh / (4 + 2 * eh);
  const double hs = 1.0 / (3 + 3 * eh), hb = eh / (3 + 3 * eh);
  const std::array<double, 6> want_homo{small, small, big, small, big, small};
  const std::array<double, 6> want_het{hs, hs, hb, hs, hb, hb};
  for (int x = 0; x < 6; ++x) {
    EXPECT_NEAR(homo.prior[x], want_homo[x], 1e-12);
    EXPECT_NEAR(hetero.prior[x], want_het[x], 1e-12);
  }
  EXPECT_NEAR(homo.prior[2], 0.482332, 1e-6);
  EXPECT_NEAR(hetero.prior[5], 0.327338, 1e-6);
  EXPECT_EQ(m::count_parameters(*m::GraphDistill(m::GraphDistillConfig::homo(50))), 3649);
  EXPECT_EQ(m::count_parameters(*m::GraphDistill(m::GraphDistillConfig::homo(30))), 2369);
  EXPECT_EQ(m::count_parameters(*m::GraphDistill(m::GraphDistillConfig::hetero(50))), 3425);
  EXPECT_EQ(m::count_parameters(*m::GraphDistill(m::GraphDistillConfig::hetero(30))), 2145);
  std::vector<std::string> names;
  for (const auto& p : m::GraphDistill(homo)->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names, (std::vector<std::string>{"W_logit.weight", "W_logit.bias", "W_repr.weight", "W_repr.bias",
                                             "W_edge.weight", "W_edge.bias"}));
}

namespace {

struct SmallCase {
  std::vector<std::vector<double>> logit{{0.2, -0.4}, {1.0, 0.5}, {-0.3, 0.8}};  // [m][n]
  std::vector<std::vector<std::vector<double>>> repr{
      {{1, 2}, {0, -1}}, {{-1, 0.5}, {2, 1}}, {{0.3, -0.7}, {1, 1}}};
  double we[4] = {0.5, -1.0, 2.0, 0.25}, be = 0.1;  // W_edge, with W_logit = [1], W_repr = [1, 0], biases 0
  Tensor logits() const {
    std::vector<float> v;
    for (auto& m : logit)
      for (double x : m) v.push_back(static_cast<float>(x));
    return torch::tensor(v).view({3, 2, 1});
  }
  Tensor reprs() const {
    std::vector<float> v;
    for (auto& m : repr)
      for (auto& n : m)
        for (double x : n) v.push_back(static_cast<float>(x));
    return torch::tensor(v).view({3, 2, 2});
  }
};

m::GraphDistill small_unit(m::GraphDistillConfig cfg, const SmallCase& sc) {
  cfg.hidden = 2, cfg.gd_size = 1;
  m::GraphDistill gd(cfg);
  torch::NoGradGuard ng;
  for (auto& p : gd->named_parameters()) p.value().zero_();
  for (auto& p : gd->named_parameters()) {
    if (p.key() == "W_logit.weight") p.value().fill_(1.0);
    if (p.key() == "W_repr.weight") p.value()[0][0] = 1.0;
    if (p.key() == "W_edge.weight")
      for (int i = 0; i < 4; ++i) p.value()[0][i] = sc.we[i];
    if (p.key() == "W_edge.bias") p.value().fill_(sc.be);
  }
  return gd;
}

}  // namespace

TEST(ModelsLoss, GraphDistillEdgesRegulariserAndLossesByHand) {
  const SmallCase sc;
  for (bool hetero : {false, true}) {
    auto cfg = hetero ? m::GraphDistillConfig::hetero(1) : m::GraphDistillConfig::homo(1);
    auto gd = small_unit(cfg, sc);
    auto r = gd->forward(sc.logits(), sc.reprs());
    // e_x,n = we0*logit_j + we1*repr_j[0] + we2*logit_i + we3*repr_i[0] + be; E = softmax_x(e/8).
    double E[6][2], reg = 0, logit_loss = 0, repr_loss = 0;
    for (int n = 0; n < 2; ++n) {
      double e[6], sum = 0;
      for (int x = 0; x < 6; ++x) {
        const int j = m::kEdges[x].first, i = m::kEdges[x].second;
        e[x] = sc.we[0] * sc.logit[j][n] + sc.we[1] * sc.repr[j][n][0] + sc.we[2] * sc.logit[i][n] +
               sc.we[3] * sc.repr[i][n][0] + sc.be;
        sum += std::exp(e[x] / 8.0);
      }
      for (int x = 0; x < 6; ++x) E[x][n] = std::exp(e[x] / 8.0) / sum;
    }
    for (int x = 0; x < 6; ++x) {
      const int j = m::kEdges[x].first, i = m::kEdges[x].second;
      const double mean_e = (E[x][0] + E[x][1]) / 2;
      reg += 10 * (mean_e - cfg.prior[x]) * (mean_e - cfg.prior[x]);
      double lsum = 0, l1sum = 0, cossum = 0, wsum = 0;
      for (int n = 0; n < 2; ++n) {
        const double w = E[x][n] + cfg.prior[x];
        wsum += w;
        lsum += std::abs(sc.logit[j][n] - sc.logit[i][n]) * w;
        const auto &a = sc.repr[j][n], &b = sc.repr[i][n];
        l1sum += (std::abs(a[0] - b[0]) + std::abs(a[1] - b[1])) * w;
        const double cos = (a[0] * b[0] + a[1] * b[1]) / std::sqrt((a[0] * a[0] + a[1] * a[1] + 1e-12) *
                                                                   (b[0] * b[0] + b[1] * b[1] + 1e-12));
        cossum += std::max(0.0, cos);
      }
      logit_loss += lsum / 2;
      repr_loss += hetero ? 10 * (cossum / 2) * (wsum / 2) : 10 * l1sum / 2;
    }
    ASSERT_EQ(r.edges.sizes(), torch::IntArrayRef({6, 2}));
    for (int x = 0; x < 6; ++x)
      for (int n = 0; n < 2; ++n) EXPECT_NEAR(r.edges[x][n].item<double>(), E[x][n], 1e-6);
    EXPECT_NEAR(r.edges.sum(0)[1].item<double>(), 1.0, 1e-6);  // the six weights of a sample sum to 1
    EXPECT_NEAR(r.reg.item<double>(), reg, 1e-6);
    EXPECT_NEAR(r.logit_loss.item<double>(), logit_loss, 1e-5);
    EXPECT_NEAR(r.repr_loss.item<double>(), repr_loss, 1e-5 * std::max(1.0, repr_loss));
  }
}

TEST(ModelsLoss, GraphDistillFixedEdgesHaveNoParametersAndDetachTeachers) {
  auto cfg = m::GraphDistillConfig::homo(2);
  cfg.learn_edges = false;
  m::GraphDistill gd(cfg);
  EXPECT_EQ(m::count_parameters(*gd), 0);
  EXPECT_TRUE(gd->parameters().empty());
  const SmallCase sc;
  Tensor logits = sc.logits().requires_grad_();
  auto r = gd->forward(logits, sc.reprs());
  for (int x = 0; x < 6; ++x)
    for (int n = 0; n < 2; ++n) EXPECT_NEAR(r.edges[x][n].item<double>(), cfg.prior[x], 1e-7);
  EXPECT_EQ(r.reg.item<double>(), 0.0);
  // With w = 2*prior fixed: d L_logit / d logit_m,n = sum over edges with student m of 2*prior/N * sign(m -
  // i); the teacher side contributes nothing.
  Tensor g = torch::autograd::grad({r.logit_loss}, {logits})[0];
  for (int mm = 0; mm < 3; ++mm)
    for (int n = 0; n < 2; ++n) {
      double want = 0;
      for (int x = 0; x < 6; ++x) {
        if (m::kEdges[x].first != mm) continue;
        const double diff = sc.logit[mm][n] - sc.logit[m::kEdges[x].second][n];
        want += 2 * cfg.prior[x] / 2.0 * (diff > 0 ? 1 : -1);
      }
      EXPECT_NEAR(g[mm][n][0].item<double>(), want, 1e-6) << mm << "," << n;
    }
}

TEST(ModelsLoss, TaskLossSumsEightL1Means) {
  m::DMDOutput o;
  Tensor y = torch::tensor({1.0f, -1.0f}).view({2, 1});
  float k = 0;
  for (Tensor* t : {&o.output_logit, &o.logits_l_homo, &o.logits_v_homo, &o.logits_a_homo, &o.logits_l_hetero,
                    &o.logits_v_hetero, &o.logits_a_hetero, &o.logits_c}) {
    *t = torch::tensor({1.0f + k, -1.0f}).view({2, 1});  // L1 mean = k/2
    k += 1;
  }
  EXPECT_NEAR(m::task_loss(o, y).item<double>(), (0 + 1 + 2 + 3 + 4 + 5 + 6 + 7) / 2.0, 1e-6);
}
