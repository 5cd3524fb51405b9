// Parity with the reference implementation on the golden MOSEI files (../shared/golden/mosei, README there)
// and on their unaligned counterpart (../shared/golden/mosei-unaligned: text/audio/vision lengths 50/500/500,
// audio and vision zero-padded at the end): eval outputs of the test split, and every loss term, edge weight
// and the gradient norm of one train batch. The model is sized from the data's lengths, as the harness sizes
// it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "harness/data/dataset.h"
#include "harness/experiment/config.h"
#include "harness/io/checkpoint.h"
#include "harness/training/trainable.h"
#include "models/dmd.h"
#include "models/graph_distill.h"
#include "models/loss.h"
#include "models/state_dict.h"

namespace m = dmdbench::models;
using torch::Tensor;

namespace {

std::string golden_dir(const std::string& set) {
  return std::string(DMDBENCH_SHARED_DIR) + "/golden/" + set;
}

// |got - want| <= rel*|want| or <= abs; returns the relative error for the report.
double check_close(double got, double want, double rel, double abs, const std::string& what) {
  const double err = std::abs(got - want);
  EXPECT_TRUE(err <= rel * std::abs(want) || err <= abs)
      << what << ": got " << got << " want " << want << " (abs err " << err << ")";
  return want != 0 ? err / std::abs(want) : err;
}

const dmdbench::Dataset& golden_data(const std::string& set) {
  static std::map<std::string, dmdbench::Dataset> cache;
  auto it = cache.find(set);
  if (it == cache.end())
    it = cache.emplace(set, dmdbench::load_mmsa(golden_dir(set) + "/data.pkl", "mosei")).first;
  return it->second;
}

// The reference MOSEI configuration sized from the golden data's widths and lengths.
m::DMDConfig golden_config(const std::string& set) {
  dmdbench::Config c = dmdbench::reference_config("mosei", "dmd");
  c.set("text_encoder", std::string("features"));  // the golden files were made with use_bert=False
  return dmdbench::dmd_config_of(c, golden_data(set).dims());
}

m::DMD load_reference_model(const std::string& set, m::DMDConfig cfg) {
  m::DMD model(cfg);
  m::load_state_dict(*model, dmdbench::read_checkpoint(golden_dir(set) + "/state_dict.pth"));
  return model;
}

// nested JSON lists -> float tensor
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

void load_gd(m::GraphDistill& gd, const nlohmann::json& state) {
  m::StateDict sd;
  for (auto it = state.begin(); it != state.end(); ++it) sd.emplace_back(it.key(), json_tensor(it.value()));
  m::load_state_dict(*gd, sd);
}

}  // namespace

void check_eval(const std::string& set) {
  m::DMD model = load_reference_model(set, golden_config(set));
  model->eval();
  const auto& test = golden_data(set).test;
  const int64_t n = test.size();  // 16 aligned, 12 unaligned
  ASSERT_GT(n, 0);
  torch::NoGradGuard ng;
  const m::DMDOutput o = model->forward(test.text, test.audio, test.vision);  // the split as one batch

  std::ifstream in(golden_dir(set) + "/expected_eval.csv");
  ASSERT_TRUE(in);
  std::string line;
  std::getline(in, line);  // id,label,output_logit,logits_c,logits_l_homo,...
  const std::vector<std::pair<std::string, const Tensor*>> columns = {
      {"output_logit", &o.output_logit},       {"logits_c", &o.logits_c},
      {"logits_l_homo", &o.logits_l_homo},     {"logits_v_homo", &o.logits_v_homo},
      {"logits_a_homo", &o.logits_a_homo},     {"logits_l_hetero", &o.logits_l_hetero},
      {"logits_v_hetero", &o.logits_v_hetero}, {"logits_a_hetero", &o.logits_a_hetero}};
  std::map<std::string, double> worst;
  int64_t row = 0;
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string id, cell;
    std::getline(ss, id, ',');
    ASSERT_LT(row, n);
    EXPECT_EQ(id, test.ids[row]);
    std::getline(ss, cell, ',');
    EXPECT_FLOAT_EQ(std::stof(cell), test.labels[row].item<float>()) << id;
    for (const auto& [name, tensor] : columns) {
      std::getline(ss, cell, ',');
      const double rel =
          check_close((*tensor)[row][0].item<double>(), std::stod(cell), 1e-5, 1e-6, id + " " + name);
      worst[name] = std::max(worst[name], rel);
    }
    ++row;
  }
  EXPECT_EQ(row, n);
  for (const auto& [name, rel] : worst)
    std::cout << "[golden eval " << set << "] " << name << " max rel err " << rel << "\n";
}

// Loss terms, edge means and the gradient norm to `rel` (relative).
void check_train(const std::string& set, double rel_tol) {
  std::ifstream in(golden_dir(set) + "/expected_train.json");
  ASSERT_TRUE(in);
  const auto expected = nlohmann::json::parse(in);
  auto cfg = golden_config(set);
  cfg.attn_dropout = cfg.attn_dropout_a = cfg.attn_dropout_v = 0.0;
  cfg.relu_dropout = cfg.embed_dropout = cfg.res_dropout = 0.0;
  cfg.text_dropout = cfg.output_dropout = 0.0;
  m::DMD model = load_reference_model(set, cfg);
  m::GraphDistill homo(m::GraphDistillConfig::homo(cfg.d)), hetero(m::GraphDistillConfig::hetero(cfg.d));
  load_gd(homo, expected.at("gd_kernels_state").at("homo"));
  load_gd(hetero, expected.at("gd_kernels_state").at("hetero"));
  model->train();
  homo->train();
  hetero->train();

  const auto& valid = golden_data(set).valid;
  ASSERT_EQ(valid.size(), 8);
  const m::LossTerms t = m::dmd_loss(model->forward(valid.text, valid.audio, valid.vision), valid.labels,
                                     homo, hetero, m::LossConfig{});
  const std::map<std::string, const Tensor*> terms = {{"task", &t.task},
                                                      {"recon", &t.recon},
                                                      {"cycle", &t.cycle},
                                                      {"ortho", &t.ortho},
                                                      {"margin", &t.margin},
                                                      {"homo_reg", &t.homo_reg},
                                                      {"homo_logit", &t.homo_logit},
                                                      {"homo_repr", &t.homo_repr},
                                                      {"hetero_reg", &t.hetero_reg},
                                                      {"hetero_logit", &t.hetero_logit},
                                                      {"hetero_repr", &t.hetero_repr},
                                                      {"total", &t.total}};
  const auto& want = expected.at("terms");
  ASSERT_EQ(want.size(), terms.size());
  for (const auto& [name, tensor] : terms) {
    const double rel = check_close(tensor->item<double>(), want.at(name).get<double>(), rel_tol, 0.0, name);
    std::cout << "[golden train " << set << "] " << name << " rel err " << rel << "\n";
  }
  for (const auto& [key, edges] :
       {std::pair<std::string, const Tensor*>{"edges_homo_mean", &t.homo_edges},
        std::pair<std::string, const Tensor*>{"edges_hetero_mean", &t.hetero_edges}}) {
    const auto w = expected.at(key).get<std::vector<double>>();
    Tensor mean = edges->mean(1);
    double worst = 0;
    for (int x = 0; x < 6; ++x)
      worst = std::max(worst, check_close(mean[x].item<double>(), w[x], rel_tol, 0.0,
                                          key + "[" + std::to_string(x) + "]"));
    std::cout << "[golden train " << set << "] " << key << " max rel err " << worst << "\n";
  }

  t.total.backward();
  double sq = 0;
  for (const auto& p : model->parameters())
    if (p.grad().defined()) sq += p.grad().to(torch::kDouble).pow(2).sum().item<double>();
  const double rel = check_close(std::sqrt(sq), expected.at("grad_l2_norm_dmd_params").get<double>(), rel_tol,
                                 0.0, "grad_l2_norm_dmd_params");
  std::cout << "[golden train] grad_l2_norm_dmd_params rel err " << rel << "\n";
}

TEST(ModelsGolden, EvalOutputsMatchReferenceOnTestSplit) {
  check_eval("mosei");
}

TEST(ModelsGolden, TrainLossTermsEdgesAndGradientNormMatchReference) {
  check_train("mosei", 1e-4);
}

// Unaligned: the model sized from lengths 50/500/500 (T' 46/500/498), positions on sequences padded at the
// end.
TEST(ModelsGolden, UnalignedEvalOutputsMatchReferenceOnTestSplit) {
  const dmdbench::FeatureDims d = golden_data("mosei-unaligned").dims();
  ASSERT_EQ(golden_data("mosei-unaligned").setting, "unaligned");
  ASSERT_EQ(std::vector<int64_t>({d.text_len, d.audio_len, d.vision_len}),
            std::vector<int64_t>({50, 500, 500}));
  check_eval("mosei-unaligned");
}

TEST(ModelsGolden, UnalignedTrainLossTermsEdgesAndGradientNormMatchReference) {
  check_train("mosei-unaligned", 1e-5);
}
