// Each variant's defining change, checked on the model and loss the harness builds from the resolved Config.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ablations/variants.h"
#include "harness/io/checkpoint.h"
#include "harness/training/trainable.h"
#include "models/dmd.h"
#include "models/graph_distill.h"
#include "models/loss.h"

using namespace dmdbench;

namespace {

Config cfg_of(const std::string& variant, const std::string& family = "mosi") {
  // Dropout off so that two forwards of the same batch agree.
  Config c = ablations::resolve_config(family, variant, "paper", {"text_encoder=features"});
  for (const char* k : {"attn_dropout", "attn_dropout_a", "attn_dropout_v", "relu_dropout", "embed_dropout",
                        "res_dropout", "text_dropout", "output_dropout"})
    c.set(k, 0.0);
  return c;
}

Batch batch_of(const FeatureDims& d, int64_t n) {
  torch::manual_seed(5);
  Batch b;
  b.text = torch::randn({n, d.text_len, d.text});
  b.audio = torch::randn({n, d.audio_len, d.audio});
  b.vision = torch::randn({n, d.vision_len, d.vision});
  b.labels = torch::tensor({-1.0f, 0.0f, 1.0f, 1.0f, 2.0f, -1.0f}).slice(0, 0, n);
  b.index = torch::arange(n);
  return b;
}

struct Built {
  models::DMD net{nullptr};
  models::GraphDistill homo{nullptr}, hetero{nullptr};
  models::LossConfig loss;
};

Built build(const Config& c) {
  torch::manual_seed(3);
  Built b;
  b.net = models::DMD(dmd_config_of(c, FeatureDims{}));
  b.homo = models::GraphDistill(homo_config_of(c));
  b.hetero = models::GraphDistill(hetero_config_of(c));
  b.loss = loss_config_of(c);
  return b;
}

models::LossTerms terms_of(Built& m, const Batch& b) {
  const models::DMDOutput out = m.net->forward(b.text, b.audio, b.vision);
  return models::dmd_loss(out, b.labels, m.homo, m.hetero, m.loss);
}

double v(const torch::Tensor& t) { return t.defined() ? t.item<double>() : 0.0; }

// total = task + 0.05 (homo logit + reg) + 0.05 (hetero logit + repr + reg) + 0.1 (cyc + rec + 0.1 (sim + ort))
double composed(const models::LossTerms& t, bool homo, bool hetero, bool decouple) {
  double total = v(t.task);
  if (homo) total += 0.05 * (v(t.homo_logit) + v(t.homo_reg));
  if (hetero) total += 0.05 * (v(t.hetero_logit) + v(t.hetero_repr) + v(t.hetero_reg));
  if (decouple) total += 0.1 * (v(t.cycle) + v(t.recon) + 0.1 * (v(t.margin) + v(t.ortho)));
  return total;
}

}  // namespace

TEST(Variants, FullDmdLossIsTheReferenceComposition) {
  Built m = build(cfg_of("dmd"));
  const auto t = terms_of(m, batch_of(FeatureDims{}, 6));
  EXPECT_NEAR(v(t.total), composed(t, true, true, true), 1e-4 * std::abs(v(t.total)));
  EXPECT_GT(v(t.hetero_repr), 0.0);
  EXPECT_GT(v(t.recon), 0.0);
}

TEST(Variants, HomoOnlyHasNoHeteroTermsInItsTotal) {
  Built m = build(cfg_of("homo-only"));
  const auto t = terms_of(m, batch_of(FeatureDims{}, 6));
  EXPECT_NEAR(v(t.total), composed(t, true, false, true), 1e-5 * std::abs(v(t.total)));
  EXPECT_EQ(v(t.hetero_logit) + v(t.hetero_repr) + v(t.hetero_reg), 0.0);
  EXPECT_GT(v(t.homo_logit), 0.0);
}

TEST(Variants, HeteroOnlyHasNoHomoTermsInItsTotal) {
  Built m = build(cfg_of("hetero-only"));
  const auto t = terms_of(m, batch_of(FeatureDims{}, 6));
  EXPECT_NEAR(v(t.total), composed(t, false, true, true), 1e-5 * std::abs(v(t.total)));
  EXPECT_EQ(v(t.homo_logit) + v(t.homo_reg), 0.0);
  EXPECT_GT(v(t.hetero_logit), 0.0);
}

TEST(Variants, NoDistillIsTaskPlusDecouplingOnly) {
  Built m = build(cfg_of("no-distill"));
  const auto t = terms_of(m, batch_of(FeatureDims{}, 6));
  EXPECT_NEAR(v(t.total), composed(t, false, false, true), 1e-5 * std::abs(v(t.total)));
}

TEST(Variants, NoDecouplingHasNoEncodersDecodersOrTheirLosses) {
  const Config full = cfg_of("dmd"), ablated = cfg_of("no-decoupling");
  Built a = build(full), b = build(ablated);
  const int64_t d = 50;
  // encoder_c, encoder_s_{l,v,a} (d x d x 1), decoder_{l,v,a} (d x 2d x 1), align_c_{l,v,a} and proj_cosine_{l,v,a}
  // (Linear d*T' -> d with bias, T' = 46) are gone.
  const int64_t removed = 4 * d * d + 3 * d * 2 * d + 6 * (d * 46 * d + d);
  EXPECT_EQ(models::count_parameters(*a.net) - models::count_parameters(*b.net), removed);
  const Batch batch = batch_of(FeatureDims{}, 6);
  const auto out = b.net->forward(batch.text, batch.audio, batch.vision);
  // c_m = s_m = the projected features, sequence-first.
  EXPECT_TRUE(torch::equal(out.c_l, out.s_l));
  EXPECT_TRUE(torch::allclose(out.c_l, out.origin_l.permute({2, 0, 1})));
  const auto t = models::dmd_loss(out, batch.labels, b.homo, b.hetero, b.loss);
  EXPECT_EQ(v(t.recon) + v(t.cycle) + v(t.ortho) + v(t.margin), 0.0);
  EXPECT_NEAR(v(t.total), composed(t, true, true, false), 1e-5 * std::abs(v(t.total)));
}

// Table 3 rows 1 and 2 are dmd and homo-only under their paper names: the same model and loss.
TEST(Variants, Table3FullAndNoHeteroGdAreDmdAndHomoOnly) {
  const Batch batch = batch_of(FeatureDims{}, 6);
  for (const auto& [t3, same] : {std::pair{"t3-full", "dmd"}, std::pair{"t3-no-heterogd", "homo-only"}}) {
    SCOPED_TRACE(t3);
    Built a = build(cfg_of(t3)), b = build(cfg_of(same));
    const auto ta = terms_of(a, batch), tb = terms_of(b, batch);
    EXPECT_EQ(v(ta.total), v(tb.total));
  }
  Built m = build(cfg_of("t3-no-heterogd"));
  const auto t = terms_of(m, batch);
  EXPECT_NEAR(v(t.total), composed(t, true, false, true), 1e-5 * std::abs(v(t.total)));
}

// Row 3, CA off: every crossmodal transformer attends to its own modality. Same parameters as full DMD; a
// modality's heterogeneous logit does not move when another modality's input changes (with CA on it does).
TEST(Variants, Table3NoCaKeepsParametersAndCutsTheFlowBetweenModalities) {
  const Config full_cfg = cfg_of("dmd"), no_ca_cfg = cfg_of("t3-no-ca");
  EXPECT_FALSE(dmd_config_of(no_ca_cfg, FeatureDims{}).cross_modal_attention);
  Built full = build(full_cfg), no_ca = build(no_ca_cfg);
  EXPECT_EQ(models::count_parameters(*no_ca.net), models::count_parameters(*full.net));
  EXPECT_EQ(models::count_parameters(*no_ca.net), 4743658);
  EXPECT_EQ(build_trainable(no_ca_cfg, FeatureDims{}, torch::kCPU)->parameter_count(), 4743658 + 3649 + 3425);
  // Same weights in both (build() seeds the same generator): only the key/value source differs.
  const auto fa = full.net->named_parameters(), fb = no_ca.net->named_parameters();
  for (const auto& p : fa) EXPECT_TRUE(torch::equal(p.value(), fb[p.key()])) << p.key();

  full.net->eval(), no_ca.net->eval();
  const Batch b = batch_of(FeatureDims{}, 6);
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor audio2 = b.audio + torch::randn(b.audio.sizes()), vision2 = b.vision * -1.5;
    const auto base = no_ca.net->forward(b.text, b.audio, b.vision);
    const auto moved_a = no_ca.net->forward(b.text, audio2, b.vision);
    const auto moved_v = no_ca.net->forward(b.text, b.audio, vision2);
    // Audio changed: text's and vision's hetero logits stay, audio's moves.
    EXPECT_TRUE(torch::equal(moved_a.logits_l_hetero, base.logits_l_hetero));
    EXPECT_TRUE(torch::equal(moved_a.logits_v_hetero, base.logits_v_hetero));
    EXPECT_FALSE(torch::allclose(moved_a.logits_a_hetero, base.logits_a_hetero));
    // Vision changed: text's and audio's stay.
    EXPECT_TRUE(torch::equal(moved_v.logits_l_hetero, base.logits_l_hetero));
    EXPECT_TRUE(torch::equal(moved_v.logits_a_hetero, base.logits_a_hetero));
    EXPECT_FALSE(torch::allclose(moved_v.logits_v_hetero, base.logits_v_hetero));
    // With CA on, audio reaches the text's hetero logit.
    const auto full_base = full.net->forward(b.text, b.audio, b.vision);
    const auto full_moved = full.net->forward(b.text, audio2, b.vision);
    EXPECT_FALSE(torch::allclose(full_moved.logits_l_hetero, full_base.logits_l_hetero));
    // The homogeneous side and the shared path are untouched by the switch.
    EXPECT_TRUE(torch::equal(base.logits_l_homo, full_base.logits_l_homo));
    EXPECT_TRUE(torch::equal(base.logits_c, full_base.logits_c));
  }
  // The loss keeps every term of full DMD.
  no_ca.net->train();
  const auto t = terms_of(no_ca, b);
  EXPECT_NEAR(v(t.total), composed(t, true, true, true), 1e-4 * std::abs(v(t.total)));
  EXPECT_GT(v(t.hetero_logit), 0.0);
}

// Rows 4-6: CA off and the GD units' losses removed in turn; row 6 also without decoupling (task loss only).
TEST(Variants, Table3RowsFourToSixRemoveTheirLosses) {
  const Batch batch = batch_of(FeatureDims{}, 6);
  struct Case {
    const char* name;
    bool homo, hetero, decouple;
  };
  for (const Case& k : {Case{"t3-fd-homogd", true, false, true}, Case{"t3-fd-only", false, false, true},
                        Case{"t3-none", false, false, false}}) {
    SCOPED_TRACE(k.name);
    const Config c = cfg_of(k.name);
    const auto mc = dmd_config_of(c, FeatureDims{});
    EXPECT_FALSE(mc.cross_modal_attention);
    EXPECT_EQ(mc.decouple, k.decouple);
    Built m = build(c);
    const auto t = terms_of(m, batch);
    EXPECT_NEAR(v(t.total), composed(t, k.homo, k.hetero, k.decouple), 1e-5 * std::abs(v(t.total)));
    if (!k.homo) EXPECT_EQ(v(t.homo_logit) + v(t.homo_reg), 0.0);
    if (!k.hetero) EXPECT_EQ(v(t.hetero_logit) + v(t.hetero_repr) + v(t.hetero_reg), 0.0);
    if (!k.decouple) {
      EXPECT_EQ(v(t.recon) + v(t.cycle) + v(t.ortho) + v(t.margin), 0.0);
      EXPECT_NEAR(v(t.total), v(t.task), 1e-7 * v(t.task));
    }
  }
}

TEST(Variants, FixedEdgesHaveNoEdgeParametersAndEqualThePrior) {
  const Config c = cfg_of("fixed-edges");
  Built m = build(c);
  EXPECT_EQ(models::count_parameters(*m.homo), 0);
  EXPECT_EQ(models::count_parameters(*m.hetero), 0);
  const auto t = terms_of(m, batch_of(FeatureDims{}, 6));
  EXPECT_EQ(v(t.homo_reg) + v(t.hetero_reg), 0.0);
  EXPECT_GT(v(t.homo_logit), 0.0);  // the distillation losses stay
  const auto homo_prior = models::GraphDistillConfig::homo(50).prior;
  const auto hetero_prior = models::GraphDistillConfig::hetero(50).prior;
  for (int x = 0; x < 6; ++x)
    for (int n = 0; n < 6; ++n) {
      EXPECT_NEAR(t.homo_edges[x][n].item<double>(), homo_prior[x], 1e-7);
      EXPECT_NEAR(t.hetero_edges[x][n].item<double>(), hetero_prior[x], 1e-7);
    }
  // Through the harness: the whole trainable has DMD's parameters only.
  auto trainable = build_trainable(c, FeatureDims{}, torch::kCPU);
  EXPECT_EQ(trainable->parameter_count(), 4743658);
  auto full = build_trainable(cfg_of("dmd"), FeatureDims{}, torch::kCPU);
  EXPECT_EQ(full->parameter_count(), 4743658 + 3649 + 3425);
}

TEST(Variants, MulTIsTheBaselineWithItsOwnRecipe) {
  auto mosi = build_trainable(cfg_of("mult"), FeatureDims{}, torch::kCPU);
  EXPECT_EQ(mosi->parameter_count(), 2571551);
  EXPECT_TRUE(mosi->edge_spaces().empty());
  FeatureDims mosei_dims;
  mosei_dims.audio = 74, mosei_dims.vision = 35;
  auto mosei = build_trainable(cfg_of("mult", "mosei"), mosei_dims, torch::kCPU);
  EXPECT_EQ(mosei->parameter_count(), 982951);
  // Its loss is the L1 of the output only.
  const Batch b = batch_of(FeatureDims{}, 4);
  mosi->train(false);
  torch::NoGradGuard no_grad;
  const auto pred = mosi->predict(b);
  EXPECT_NEAR(mosi->loss(b).total.item<double>(), (pred - b.labels).abs().mean().item<double>(), 1e-6);
}

// `train` builds its model from the resolved configuration of the paper profile; `evaluate` builds the reference
// architecture of the family for a checkpoint. Both go through build_trainable and the configuration table, so
// for full DMD they must give the same parameter names and shapes, and those of the reference checkpoint.
TEST(ModelFromTable, TrainAndEvaluateBuildIdenticalArchitectures) {
  for (const char* family : {"mosi", "mosei"}) {
    SCOPED_TRACE(family);
    const FeatureDims dims = reference_dims(family);
    torch::manual_seed(1);
    // The frozen-feature protocol (what `evaluate` builds without --bert); BERT architectures: models_golden_bert.
    auto trained =
        build_trainable(ablations::resolve_config(family, "dmd", "paper", {"text_encoder=features"}), dims, torch::kCPU);
    torch::manual_seed(2);
    Config reference = reference_config(family, "dmd");
    reference.set("text_encoder", "features");
    auto evaluated = build_trainable(reference, dims, torch::kCPU);
    const auto a = trained->network_state(), b = evaluated->network_state();
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].first, b[i].first);
      EXPECT_EQ(a[i].second.sizes(), b[i].second.sizes()) << a[i].first;
    }
    EXPECT_EQ(trained->parameter_count(), evaluated->parameter_count());
    // And the checkpoint of one loads strictly into the other.
    EXPECT_NO_THROW(evaluated->load_network_state(trained->network_state()));
  }
}

TEST(ModelFromTable, EvaluateArchitectureMatchesTheReferenceCheckpoint) {
  // The golden MOSEI checkpoint of the reference code: every name and shape, strictly.
  Config cfg = reference_config("mosei", "dmd");
  cfg.set("text_encoder", "features");  // use_bert=False: 768-d text features
  auto model = build_trainable(cfg, reference_dims("mosei"), torch::kCPU);
  EXPECT_NO_THROW(model->load_network_state(read_checkpoint(std::string(DMDBENCH_SHARED_DIR) + "/golden/mosei/state_dict.pth")));
}
