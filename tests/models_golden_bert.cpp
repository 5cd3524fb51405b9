// Parity of DMD with its BERT text model (use_bert=true, use_finetune=true) with the reference on the golden
// bert-tiny files (../shared/golden/bert-tiny, README there): the reference DMD checkpoint whose text_model is a
// small random BERT loads strictly, its eval outputs on the test split, and, with every dropout at 0 (BERT's
// too), every loss term of one training batch, the gradient L2 norms of DMD, of the BERT alone and of the [PAD]
// embedding row, and the effect of one clip + Adam(lr 1e-4) step: how far the BERT moved and how many
// word-embedding rows changed. The model is built the one way the harness builds it (the configuration table,
// dmd_config_of, build_trainable, TrainStep).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "harness/data/dataset.h"
#include "harness/io/bert_folder.h"
#include "harness/io/checkpoint.h"
#include "harness/training/recipe.h"
#include "harness/training/step.h"
#include "harness/training/trainable.h"
#include "models/dmd.h"
#include "models/fused_adam.h"
#include "models/graph_distill.h"
#include "models/loss.h"
#include "models/state_dict.h"

using namespace dmdbench;
namespace m = dmdbench::models;
using torch::Tensor;

namespace {

const std::string kGolden = std::string(DMDBENCH_SHARED_DIR) + "/golden/bert-tiny";

double check_close(double got, double want, double rel, double abs, const std::string& what) {
  const double err = std::abs(got - want);
  EXPECT_TRUE(err <= rel * std::abs(want) || err <= abs)
      << what << ": got " << got << " want " << want << " (abs err " << err << ")";
  return want != 0 ? err / std::abs(want) : err;
}

const Dataset& golden_data() {
  static const Dataset data = load_mmsa(kGolden + "/data.pkl", "mosei");
  return data;
}

const BertFolder& golden_folder() {
  static const BertFolder folder = load_bert_folder(kGolden + "/bert");
  return folder;
}

// The reference configuration (MOSEI, bert-finetune) with every dropout at 0 when asked, BERT's included.
Config golden_config(bool no_dropout) {
  Config c = reference_config("mosei", "dmd");
  if (no_dropout)
    for (const char* k : {"attn_dropout", "attn_dropout_a", "attn_dropout_v", "relu_dropout", "embed_dropout",
                          "res_dropout", "text_dropout", "output_dropout"})
      c.set(k, 0.0);
  return c;
}

BertFolder folder_without_dropout() {
  BertFolder f = golden_folder();
  f.config.hidden_dropout = f.config.attention_dropout = 0.0;
  return f;
}

void flatten(const nlohmann::json& j, std::vector<float>& values, std::vector<int64_t>& shape, size_t depth) {
  if (!j.is_array()) {
    values.push_back(j.get<float>());
    return;
  }
  if (shape.size() == depth) shape.push_back(static_cast<int64_t>(j.size()));
  for (const auto& e : j) flatten(e, values, shape, depth + 1);
}

Tensor json_tensor(const nlohmann::json& j) {
  std::vector<float> values;
  std::vector<int64_t> shape;
  flatten(j, values, shape, 0);
  return torch::tensor(values).view(shape);
}

const nlohmann::json& expected_train() {
  static const nlohmann::json j = [] {
    std::ifstream in(kGolden + "/expected_train.json");
    return nlohmann::json::parse(in);
  }();
  return j;
}

// A Trainable for the golden checkpoint: DMD from the configuration table with the reference's weights, and the
// GD units' weights of expected_train.json.
// The reference DMD with its BERT and the GD units' recorded state; `text_encoder` as in the configuration table.
std::unique_ptr<Trainable> golden_trainable(bool no_dropout, const std::string& text_encoder = "bert-finetune") {
  const BertFolder folder = no_dropout ? folder_without_dropout() : golden_folder();
  torch::manual_seed(0);
  Config cfg = golden_config(no_dropout);
  cfg.set("text_encoder", text_encoder);
  auto t = build_trainable(cfg, golden_data().dims(), torch::kCPU, &folder);
  t->load_network_state(read_checkpoint(kGolden + "/state_dict.pth"));
  m::StateDict snap = t->snapshot();
  for (auto& [name, tensor] : snap)
    for (const char* space : {"homo", "hetero"}) {
      const std::string prefix = std::string(space) + "_gd.";
      if (name.rfind(prefix, 0) == 0)
        tensor = json_tensor(expected_train().at("gd_kernels_state").at(space).at(name.substr(prefix.size())));
    }
  t->restore(snap);
  return t;
}

Batch whole_split(const Split& s) {
  Batcher b(s, s.size(), false, false, 0);
  return b.get(0);
}

}  // namespace

TEST(ModelsGoldenBert, CheckpointKeysAreTransformersNamesUnderTextModel) {
  const m::StateDict ref = read_checkpoint(kGolden + "/state_dict.pth");
  auto t = golden_trainable(false);
  const m::StateDict ours = t->network_state();
  ASSERT_EQ(ours.size(), ref.size());
  for (std::size_t i = 0; i < ours.size(); ++i) {
    EXPECT_EQ(ours[i].first, ref[i].first) << "entry " << i;  // same names in the same order
    EXPECT_TRUE(torch::equal(ours[i].second, ref[i].second)) << ours[i].first;
  }
  EXPECT_EQ(ours.front().first, "text_model.model.embeddings.position_ids");
  // A checkpoint without the position_ids buffer (transformers >= 4.31) loads too.
  m::StateDict without;
  for (const auto& kv : ref)
    if (kv.first != "text_model.model.embeddings.position_ids") without.push_back(kv);
  EXPECT_NO_THROW(t->load_network_state(without));
}

TEST(ModelsGoldenBert, EvalOutputsMatchReferenceOnTestSplit) {
  auto t = golden_trainable(false);
  const Split& test = golden_data().test;
  ASSERT_EQ(test.text_bert.sizes(), (std::vector<int64_t>{test.size(), 3, 50}));
  torch::NoGradGuard ng;
  t->train(false);
  std::vector<std::pair<std::string, Tensor>> heads;
  const Tensor out = t->predict(whole_split(test), nullptr, &heads);
  heads.insert(heads.begin(), {"output_logit", out});

  std::ifstream in(kGolden + "/expected_eval.csv");
  ASSERT_TRUE(in);
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();  // the file has CRLF line ends
  std::vector<std::string> header;
  {
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) header.push_back(c);
  }
  ASSERT_EQ(header.size(), 10u);
  std::map<std::string, double> worst;
  int64_t row = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::stringstream ss(line);
    std::vector<std::string> cells;
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
    ASSERT_EQ(cells.size(), 10u);
    ASSERT_LT(row, test.size());
    EXPECT_EQ(cells[0], test.ids[row]);
    for (std::size_t c = 2; c < 10; ++c) {
      const auto it = std::find_if(heads.begin(), heads.end(), [&](const auto& h) { return h.first == header[c]; });
      ASSERT_NE(it, heads.end()) << header[c];
      const double rel = check_close(it->second[row].item<double>(), std::stod(cells[c]), 1e-5, 1e-6,
                                     cells[0] + " " + header[c]);
      worst[header[c]] = std::max(worst[header[c]], rel);
    }
    ++row;
  }
  EXPECT_EQ(row, test.size());
  for (const auto& [name, rel] : worst) std::cout << "[golden bert eval] " << name << " max rel err " << rel << "\n";
}

TEST(ModelsGoldenBert, TrainTermsNormsAndOneAdamStepMatchReference) {
  const nlohmann::json& expected = expected_train();
  const Dataset& data = golden_data();
  const Batch batch = whole_split(data.valid);
  ASSERT_EQ(batch.labels.size(0), expected.at("batch").get<int64_t>());

  // Terms and gradient norms on the modules themselves (the loss terms are not part of Trainable's interface).
  const BertFolder folder = folder_without_dropout();
  const Config cfg = golden_config(true);
  m::DMD net(dmd_config_of(cfg, data.dims(), &folder.config));
  m::load_state_dict(*net, read_checkpoint(kGolden + "/state_dict.pth"));
  m::GraphDistill homo(homo_config_of(cfg)), hetero(hetero_config_of(cfg));
  for (auto [gd, space] : {std::pair<m::GraphDistill*, const char*>{&homo, "homo"}, {&hetero, "hetero"}}) {
    m::StateDict sd;
    const auto& state = expected.at("gd_kernels_state").at(space);
    for (auto it = state.begin(); it != state.end(); ++it) sd.emplace_back(it.key(), json_tensor(it.value()));
    m::load_state_dict(**gd, sd);
  }
  net->train(), homo->train(), hetero->train();
  const m::LossTerms t = m::dmd_loss(net->forward(batch.text_bert, batch.audio, batch.vision), batch.labels, homo,
                                     hetero, loss_config_of(cfg));
  const std::map<std::string, const Tensor*> terms = {
      {"task", &t.task},           {"recon", &t.recon},           {"cycle", &t.cycle},
      {"ortho", &t.ortho},         {"margin", &t.margin},         {"homo_reg", &t.homo_reg},
      {"homo_logit", &t.homo_logit}, {"homo_repr", &t.homo_repr}, {"hetero_reg", &t.hetero_reg},
      {"hetero_logit", &t.hetero_logit}, {"hetero_repr", &t.hetero_repr}, {"total", &t.total}};
  ASSERT_EQ(expected.at("terms").size(), terms.size());
  for (const auto& [name, tensor] : terms) {
    const double rel = check_close(tensor->item<double>(), expected.at("terms").at(name).get<double>(), 1e-5, 0.0, name);
    std::cout << "[golden bert train] " << name << " rel err " << rel << "\n";
  }
  t.total.backward();
  // The reference's expected_train.json records the gradient norms after clip_grad_value_(0.6) (the state the
  // optimizer steps from): a few BERT and DMD gradient elements exceed 0.6 here, so the norms are of the clamped
  // gradients (the unclamped ones are ~1.5% larger).
  auto norm = [](const std::vector<Tensor>& params) {
    double sq = 0;
    for (const auto& p : params)
      if (p.grad().defined()) sq += p.grad().clamp(-0.6, 0.6).to(torch::kDouble).pow(2).sum().item<double>();
    return std::sqrt(sq);
  };
  const double dmd_norm = norm(net->parameters()), bert_norm = norm(net->text_model()->parameters());
  const Tensor word_grad = net->text_model()->word_embeddings->weight.grad();
  const double pad_norm = word_grad[folder.config.pad_token_id].norm().item<double>();
  std::cout << "[golden bert train] grad_l2_norm_dmd_params rel err "
            << check_close(dmd_norm, expected.at("grad_l2_norm_dmd_params").get<double>(), 1e-4, 0.0, "dmd norm")
            << "\n[golden bert train] grad_l2_norm_bert_params rel err "
            << check_close(bert_norm, expected.at("grad_l2_norm_bert_params").get<double>(), 1e-4, 0.0, "bert norm")
            << "\n";
  EXPECT_EQ(pad_norm, expected.at("grad_l2_norm_pad_embedding_row").get<double>());
  EXPECT_EQ(net->text_model()->pooler_dense->weight.grad().defined(), expected.at("pooler_has_grad").get<bool>());

  // One step through the harness's own training step: clip_grad_value_(0.6), then Adam(lr 1e-4) over DMD and
  // both GD units (TrainStep with update_epochs = 1: the first and last batch of its group).
  auto trainable = golden_trainable(true);
  const Config step_cfg = golden_config(true);
  ASSERT_DOUBLE_EQ(step_cfg.num("learning_rate"), 1e-4);
  ASSERT_DOUBLE_EQ(step_cfg.num("grad_clip"), 0.6);
  const m::StateDict before = trainable->network_state();
  TrainStep step(*trainable, step_cfg);
  trainable->train(true);
  double grad_norm = 0;
  const Tensor total = step.run(batch, true, true, &grad_norm).total;
  check_close(total.item<double>(), expected.at("terms").at("total").get<double>(), 1e-5, 0.0, "step total");
  const m::StateDict after = trainable->network_state();
  ASSERT_EQ(before.size(), after.size());
  double moved_sq = 0;
  int64_t rows_changed = -1;
  for (std::size_t i = 0; i < before.size(); ++i) {
    const std::string& name = before[i].first;
    if (name.rfind("text_model.model.", 0) != 0 || !before[i].second.is_floating_point()) continue;
    moved_sq += (after[i].second.to(torch::kDouble) - before[i].second.to(torch::kDouble)).pow(2).sum().item<double>();
    if (name == "text_model.model.embeddings.word_embeddings.weight")
      rows_changed = after[i].second.ne(before[i].second).any(1).sum().item<int64_t>();
  }
  const auto& step_expected = expected.at("after_one_step");
  const double moved_rel = check_close(std::sqrt(moved_sq), step_expected.at("bert_params_l2_moved").get<double>(),
                                       1e-4, 0.0, "bert_params_l2_moved");
  std::cout << "[golden bert step] bert_params_l2_moved " << std::sqrt(moved_sq) << " rel err " << moved_rel
            << "\n[golden bert step] word_embedding_rows_changed " << rows_changed << "\n";
  EXPECT_EQ(rows_changed, step_expected.at("word_embedding_rows_changed").get<int64_t>());
}

TEST(ModelsGoldenBert, FrozenBertGetsNoGradientButStaysInTheOptimizer) {
  Config cfg = golden_config(true);
  cfg.set("text_encoder", std::string("bert-frozen"));
  auto t = golden_trainable(true, "bert-frozen");
  const m::StateDict before = t->network_state();
  TrainStep step(*t, cfg);
  t->train(true);
  const Tensor total = step.run(whole_split(golden_data().valid), true, true).total;
  // The same forward as fine-tuning (dropout 0), so the same loss; BERT itself does not move.
  check_close(total.item<double>(), expected_train().at("terms").at("total").get<double>(), 1e-5, 0.0, "total");
  const m::StateDict after = t->network_state();
  int moved_bert = 0, moved_rest = 0;
  for (std::size_t i = 0; i < before.size(); ++i) {
    const bool changed = !torch::equal(before[i].second, after[i].second);
    (before[i].first.rfind("text_model.", 0) == 0 ? moved_bert : moved_rest) += changed;
  }
  EXPECT_EQ(moved_bert, 0);
  EXPECT_GT(moved_rest, 100);
  int64_t bert_params = 0;
  for (const auto& p : step.parameters()) bert_params += p.numel();
  EXPECT_EQ(bert_params, t->parameter_count());  // BERT's parameters are in the one Adam's list
}
