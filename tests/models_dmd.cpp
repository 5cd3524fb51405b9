// DMD and MulT structure: parameter counts, reference key names and shapes, output shapes, the no-decoupling
// variant, loss switches, and the strict state-dict loader.
#include <gtest/gtest.h>

#include "tests/model_configs.h"
#include <torch/torch.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "baselines/mult.h"
#include "harness/io/checkpoint.h"
#include "models/dmd.h"
#include "models/graph_distill.h"
#include "models/loss.h"
#include "models/state_dict.h"

namespace m = dmdbench::models;
namespace b = dmdbench::baselines;
using torch::Tensor;

namespace {

const std::string kGolden = std::string(DMDBENCH_SHARED_DIR) + "/golden/mosei";

struct Inputs {
  Tensor text, audio, vision, labels;
};

Inputs random_inputs(const m::DMDConfig& c, int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  return {torch::randn({n, c.seq_len, c.text_dim}), torch::randn({n, c.audio_len, c.audio_dim}),
          torch::randn({n, c.vision_len, c.vision_dim}), torch::randint(-3, 4, {n}).to(torch::kFloat)};
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const m::StateDictMismatch& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ModelsDMD, ParameterCountsMatchTheReference) {
  EXPECT_EQ(m::count_parameters(*m::DMD(dmdbench::testing::reference_dmd("mosi"))), 4743658);
  EXPECT_EQ(m::count_parameters(*m::DMD(dmdbench::testing::reference_dmd("mosei"))), 1792778);
  EXPECT_EQ(m::count_parameters(*b::MulT(dmdbench::testing::reference_mult("mosi"))), 2571551);
  EXPECT_EQ(m::count_parameters(*b::MulT(dmdbench::testing::reference_mult("mosei"))), 982951);
}

TEST(ModelsDMD, MulTCountDoesNotDependOnLengthsOrPositions) {
  auto cfg = dmdbench::testing::reference_mult("mosi");
  cfg.base.audio_len = cfg.base.vision_len = 50;
  cfg.position_embedding = false;
  EXPECT_EQ(m::count_parameters(*b::MulT(cfg)), 2571551);
}

TEST(ModelsDMD, StateDictKeysAndShapesEqualTheReferenceSummary) {
  std::ifstream in(kGolden + "/state_dict_summary.json");
  ASSERT_TRUE(in) << "cannot open " << kGolden << "/state_dict_summary.json";
  // Python's json writes NaN for the uninitialised one-element buffers; strict JSON has no NaN.
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (size_t at = text.find("NaN"); at != std::string::npos; at = text.find("NaN", at))
    text.replace(at, 3, "null");
  const auto summary = nlohmann::ordered_json::parse(text);
  const auto& tensors = summary.at("tensors");
  ASSERT_EQ(summary.at("entries").get<int64_t>(), 702);
  m::DMD model(dmdbench::testing::reference_dmd("mosei"));
  const auto sd = m::state_dict(*model);
  ASSERT_EQ(sd.size(), tensors.size());
  size_t i = 0;
  int64_t total = 0;
  for (auto it = tensors.begin(); it != tensors.end(); ++it, ++i) {
    EXPECT_EQ(sd[i].first, it.key()) << "position " << i;  // same order as the reference's OrderedDict
    std::vector<int64_t> shape = it.value().at("shape").get<std::vector<int64_t>>();
    EXPECT_EQ(sd[i].second.sizes().vec(), shape) << it.key();
    total += sd[i].second.numel();
  }
  EXPECT_EQ(total, summary.at("parameters").get<int64_t>());  // 1,792,778 parameters + 24 one-element buffers
}

TEST(ModelsDMD, ForwardReturnsEveryOutputWithReferenceShapes) {
  const auto c = dmdbench::testing::reference_dmd("mosei");  // d = 30, T' = (46, 50, 48) for (l, a, v)
  m::DMD model(c);
  model->eval();
  auto in = random_inputs(c, 3, 1);
  torch::NoGradGuard ng;
  auto o = model->forward(in.text, in.audio, in.vision);
  using S = std::vector<int64_t>;
  for (const Tensor* t : {&o.output_logit, &o.logits_c, &o.logits_l_homo, &o.logits_v_homo, &o.logits_a_homo,
                          &o.logits_l_hetero, &o.logits_v_hetero, &o.logits_a_hetero})
    EXPECT_EQ(t->sizes().vec(), (S{3, 1}));
  for (const Tensor* t : {&o.repr_l_homo, &o.repr_v_homo, &o.repr_a_homo, &o.proj_s_l, &o.proj_s_v,
                          &o.proj_s_a, &o.c_l_sim, &o.c_v_sim, &o.c_a_sim})
    EXPECT_EQ(t->sizes().vec(), (S{3, 30}));
  for (const Tensor* t :
       {&o.repr_l_hetero, &o.repr_v_hetero, &o.repr_a_hetero, &o.last_h_l, &o.last_h_v, &o.last_h_a})
    EXPECT_EQ(t->sizes().vec(), (S{3, 60}));
  EXPECT_EQ(o.origin_l.sizes().vec(), (S{3, 30, 46}));
  EXPECT_EQ(o.recon_a.sizes().vec(), (S{3, 30, 50}));
  EXPECT_EQ(o.s_v_r.sizes().vec(), (S{3, 30, 48}));
  EXPECT_EQ(o.s_a.sizes().vec(), (S{50, 3, 30}));
  EXPECT_EQ(o.c_v.sizes().vec(), (S{48, 3, 30}));
  EXPECT_GE(o.repr_l_homo.min().item<double>(), 0.0);  // post-ReLU
  // c_l_sim reads c channel-major: recompute it from the returned c_l [T',N,d] and the layer weights.
  auto sd = m::state_dict(*model);
  Tensor w, bias;
  for (auto& [k, t] : sd) {
    if (k == "align_c_l.weight") w = t;
    if (k == "align_c_l.bias") bias = t;
  }
  Tensor channel_major = o.c_l.permute({1, 2, 0}).reshape({3, -1});
  EXPECT_LT((torch::addmm(bias, channel_major, w.t()) - o.c_l_sim).abs().max().item<double>(), 1e-5);
  // proj_cosine reads s time-major: s [T',N,d] -> [N,T',d] flattened (index t*d + ch).
  Tensor wc, bc;
  for (auto& [k, t] : sd) {
    if (k == "proj_cosine_v.weight") wc = t;
    if (k == "proj_cosine_v.bias") bc = t;
  }
  Tensor time_major = o.s_v.transpose(0, 1).reshape({3, -1});
  EXPECT_LT((torch::addmm(bc, time_major, wc.t()) - o.proj_s_v).abs().max().item<double>(), 1e-5);
}

TEST(ModelsDMD, NoDecouplingBuildsNoEncodersDecodersOrAlignLayers) {
  auto c = dmdbench::testing::reference_dmd("mosi");
  c.decouple = false;
  m::DMD model(c);
  for (const auto& p : model->named_parameters()) {
    for (const char* banned : {"encoder_s_", "encoder_c", "decoder_", "align_c_", "proj_cosine_"})
      EXPECT_EQ(p.key().find(banned), std::string::npos) << p.key();
  }
  const int64_t d = 50, flat = d * 46;
  const int64_t removed = 4 * d * d + 3 * 2 * d * d + 6 * (flat * d + d);
  EXPECT_EQ(m::count_parameters(*model), 4743658 - removed);
  model->eval();
  auto in = random_inputs(c, 2, 2);
  torch::NoGradGuard ng;
  auto o = model->forward(in.text, in.audio, in.vision);
  EXPECT_TRUE(torch::equal(o.s_l, o.c_l));
  EXPECT_TRUE(torch::equal(o.s_l, o.origin_l.permute({2, 0, 1})));
  EXPECT_FALSE(o.recon_l.defined());
  EXPECT_FALSE(o.c_l_sim.defined());
  EXPECT_TRUE(o.output_logit.defined() && o.logits_c.defined() && o.repr_a_hetero.defined());

  // The decoupling losses need the decoupled outputs.
  m::GraphDistill homo(m::GraphDistillConfig::homo(d)), hetero(m::GraphDistillConfig::hetero(d));
  m::LossConfig lc;
  EXPECT_THROW(m::dmd_loss(o, in.labels, homo, hetero, lc), std::invalid_argument);
  lc.decouple_losses = false;
  auto t = m::dmd_loss(o, in.labels, homo, hetero, lc);
  EXPECT_EQ(t.recon.item<double>(), 0.0);
  EXPECT_EQ(t.margin.item<double>(), 0.0);
  EXPECT_GT(t.total.item<double>(), 0.0);
}

TEST(ModelsDMD, LossSwitchesAndTotalComposition) {
  const auto c = dmdbench::testing::reference_dmd("mosei");
  m::DMD model(c);
  model->eval();
  auto in = random_inputs(c, 4, 3);
  auto o = model->forward(in.text, in.audio, in.vision);
  m::GraphDistill homo(m::GraphDistillConfig::homo(c.d)), hetero(m::GraphDistillConfig::hetero(c.d));
  m::LossConfig lc;
  auto t = m::dmd_loss(o, in.labels, homo, hetero, lc);
  const double want = t.task.item<double>() +
                      0.05 * (t.homo_logit.item<double>() + t.homo_reg.item<double>()) +
                      0.05 * (t.hetero_logit + t.hetero_repr + t.hetero_reg).item<double>() +
                      0.1 * (t.cycle.item<double>() + t.recon.item<double>() +
                             0.1 * (t.margin.item<double>() + t.ortho.item<double>()));
  EXPECT_NEAR(t.total.item<double>(), want, 1e-5 * want);
  EXPECT_GT(t.homo_repr.item<double>(), 0.0);  // computed although not in the total
  EXPECT_EQ(t.homo_edges.sizes().vec(), (std::vector<int64_t>{6, 4}));

  lc.use_homo_gd = false;
  auto u = m::dmd_loss(o, in.labels, homo, hetero, lc);
  EXPECT_FALSE(u.homo_edges.defined());
  EXPECT_EQ(u.homo_logit.item<double>(), 0.0);
  EXPECT_NEAR(u.total.item<double>(),
              t.total.item<double>() - 0.05 * (t.homo_logit.item<double>() + t.homo_reg.item<double>()),
              1e-5);
  lc.ortho_per_position = true;
  auto v = m::dmd_loss(o, in.labels, homo, hetero, lc);
  EXPECT_NE(v.ortho.item<double>(), u.ortho.item<double>());
}

TEST(ModelsDMD, StateDictRoundTripReproducesOutputs) {
  const auto c = dmdbench::testing::reference_dmd("mosei");
  torch::manual_seed(10);
  m::DMD a(c);
  torch::manual_seed(11);
  m::DMD bmodel(c);
  m::load_state_dict(*bmodel, m::state_dict(*a));
  a->eval();
  bmodel->eval();
  auto in = random_inputs(c, 2, 4);
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(a->forward(in.text, in.audio, in.vision).output_logit,
                           bmodel->forward(in.text, in.audio, in.vision).output_logit));
}

TEST(ModelsDMD, StrictLoadNamesMissingUnexpectedAndMisshapedKeys) {
  m::DMD model(dmdbench::testing::reference_dmd("mosei"));
  const auto good = m::state_dict(*model);

  auto missing = good;
  missing.erase(missing.begin() + 5);
  const std::string removed = good[5].first;
  std::string msg = message_of([&] { m::load_state_dict(*model, missing); });
  EXPECT_NE(msg.find("missing: " + removed), std::string::npos) << msg;

  auto extra = good;
  extra.emplace_back("trans_l_mem.layers.9.fc1.weight", torch::zeros({2}));
  msg = message_of([&] { m::load_state_dict(*model, extra); });
  EXPECT_NE(msg.find("unexpected: trans_l_mem.layers.9.fc1.weight"), std::string::npos) << msg;

  auto wrong = good;
  for (auto& [k, t] : wrong)
    if (k == "proj_a.weight") t = torch::zeros({30, 74, 3});
  msg = message_of([&] { m::load_state_dict(*model, wrong); });
  EXPECT_NE(msg.find("shape: proj_a.weight expected [30,74,1] got [30,74,3]"), std::string::npos) << msg;

  // A refused load changes nothing.
  const auto after = m::state_dict(*model);
  for (size_t i = 0; i < good.size(); ++i) ASSERT_TRUE(torch::equal(after[i].second, good[i].second));
}

TEST(ModelsDMD, MulTForwardShapesAlignedAndUnaligned) {
  for (const char* fam : {"mosi", "mosei"}) {
    auto cfg = dmdbench::testing::reference_mult(fam);
    cfg.base.audio_len = 60, cfg.base.vision_len = 70;  // unaligned lengths work (no length-sized layer)
    b::MulT model(cfg);
    model->eval();
    auto in = random_inputs(cfg.base, 2, 5);
    torch::NoGradGuard ng;
    Tensor out = model->forward(in.text, in.audio, in.vision);
    EXPECT_EQ(out.sizes().vec(), (std::vector<int64_t>{2, 1})) << fam;
    EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  }
}

TEST(ModelsDMD, TrainStepGradientsReachEveryUsedParameter) {
  // One backward of the full loss on MOSI-sized inputs: every parameter except proj_cosine_* gets a gradient
  // (proj_cosine is returned but never used in a loss, as in the reference).
  auto c = dmdbench::testing::reference_dmd("mosi");
  m::DMD model(c);
  model->train();
  m::GraphDistill homo(m::GraphDistillConfig::homo(c.d)), hetero(m::GraphDistillConfig::hetero(c.d));
  auto in = random_inputs(c, 4, 6);
  in.labels = torch::tensor({1.0f, 1.0f, -1.0f, 0.0f});
  auto t =
      m::dmd_loss(model->forward(in.text, in.audio, in.vision), in.labels, homo, hetero, m::LossConfig{});
  t.total.backward();
  for (const auto& p : model->named_parameters()) {
    const bool unused = p.key().rfind("proj_cosine_", 0) == 0;
    EXPECT_EQ(p.value().grad().defined(), !unused) << p.key();
  }
  for (const auto& p : homo->named_parameters()) EXPECT_TRUE(p.value().grad().defined()) << p.key();
}

TEST(ModelsDMD, CheckpointWithMissingExtraOrMisshapedKeyIsRefused) {
  // Through the torch.save zip format: write a damaged state dict, read it back, load strictly.
  m::DMD model(dmdbench::testing::reference_dmd("mosei"));
  const auto good = m::state_dict(*model);
  const std::string path = testing::TempDir() + "models_damaged.pth";
  auto damaged = good;
  damaged.erase(damaged.begin() + 1);  // proj_a.weight
  damaged.emplace_back("proj_x.weight", torch::zeros({3}));
  for (auto& [k, t] : damaged)
    if (k == "out_layer.bias") t = torch::zeros({2});
  dmdbench::write_checkpoint(path, damaged);
  const std::string msg = message_of([&] { m::load_state_dict(*model, dmdbench::read_checkpoint(path)); });
  EXPECT_NE(msg.find("missing: proj_a.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected: proj_x.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("shape: out_layer.bias expected [1] got [2]"), std::string::npos) << msg;
  std::remove(path.c_str());
  // The undamaged dict goes through the same path and loads.
  dmdbench::write_checkpoint(path, good);
  EXPECT_NO_THROW(m::load_state_dict(*model, dmdbench::read_checkpoint(path)));
  std::remove(path.c_str());
}
