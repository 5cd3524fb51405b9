// Training with the BERT text encoder on synthetic data (its text_bert channel) and a small random BERT: the
// fine-tuned BERT moves and the frozen one does not; the best weights written with --checkpoint-out read back
// identically, carry transformers' names under text_model.model., and load into a fresh model exactly.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "ablations/variants.h"
#include "harness/io/bert_folder.h"
#include "harness/io/checkpoint.h"
#include "harness/training/trainable.h"
#include "harness/training/trainer.h"
#include "tests/training_support.h"

using namespace dmdbench;
namespace fs = std::filesystem;

namespace {

const Dataset& tiny_mosi() {
  return testing_support::synthetic_mosi(0.02);
}

// A random BERT of tests/fixtures/bert-smoke/config.json (2 layers, hidden 32, vocabulary 512).
BertFolder smoke_bert(uint64_t seed) {
  const std::string path = std::string(DMDBENCH_SOURCE_DIR) + "/tests/fixtures/bert-smoke/config.json";
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  BertFolder f;
  f.config = parse_bert_config(text, path);
  f.config_json = bert_config_json(f.config);
  torch::manual_seed(seed);
  f.model = models::Bert(f.config);
  return f;
}

Config smoke(const std::string& encoder) {
  return ablations::resolve_config("mosi", "dmd", "smoke", {"max_epochs=1", "text_encoder=" + encoder}, true);
}

// The BERT's weights in a network state.
models::StateDict bert_part(const models::StateDict& s) {
  models::StateDict out;
  for (const auto& kv : s)
    if (kv.first.rfind("text_model.model.", 0) == 0) out.push_back(kv);
  return out;
}

bool same(const models::StateDict& a, const models::StateDict& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].first != b[i].first || !torch::equal(a[i].second, b[i].second)) return false;
  return true;
}

}  // namespace

TEST(TrainingBert, FineTunedBertMovesFrozenBertDoesNotAndCheckpointRoundTrips) {
  torch::set_num_threads(1);
  const BertFolder bert = smoke_bert(5);
  models::StateDict start = models::state_dict(*bert.model);
  for (auto& kv : start) kv.second = kv.second.clone();

  const TrainResult tuned = train_run(tiny_mosi(), smoke("bert-finetune"), 7, torch::kCPU, {}, &bert);
  ASSERT_EQ(tuned.history.size(), 1u);
  EXPECT_TRUE(std::isfinite(tuned.history[0].train_loss));
  const models::StateDict tuned_bert = bert_part(tuned.best_network_state);
  ASSERT_EQ(tuned_bert.size(), start.size());
  int moved = 0;
  for (std::size_t i = 0; i < start.size(); ++i) {
    EXPECT_EQ(tuned_bert[i].first, "text_model.model." + start[i].first);  // transformers' names
    moved += !torch::equal(tuned_bert[i].second, start[i].second);
  }
  EXPECT_GT(moved, 20);  // fine-tuned: (nearly) every tensor moved
  EXPECT_TRUE(torch::equal(models::state_dict(*bert.model)[1].second, start[1].second))
      << "the folder is untouched";

  const TrainResult frozen = train_run(tiny_mosi(), smoke("bert-frozen"), 7, torch::kCPU, {}, &bert);
  const models::StateDict frozen_bert = bert_part(frozen.best_network_state);
  for (std::size_t i = 0; i < start.size(); ++i)
    EXPECT_TRUE(torch::equal(frozen_bert[i].second, start[i].second)) << frozen_bert[i].first;
  EXPECT_NE(frozen.history[0].train_loss, tuned.history[0].train_loss);

  // --checkpoint-out: written, read back identically, loaded into a fresh model: the same predictions.
  const fs::path path =
      fs::temp_directory_path() / ("dmdbench_bert_ckpt_" + std::to_string(getpid()) + ".pth");
  write_checkpoint(path.string(), tuned.best_network_state);
  const models::StateDict back = read_checkpoint(path.string());
  fs::remove(path);
  EXPECT_TRUE(same(back, tuned.best_network_state));
  EXPECT_EQ(back.front().first, "text_model.model.embeddings.position_ids");
  torch::manual_seed(99);
  const BertFolder other = smoke_bert(6);
  auto fresh = build_trainable(smoke("bert-finetune"), tiny_mosi().dims(), torch::kCPU, &other);
  fresh->load_network_state(back);
  EXPECT_TRUE(same(fresh->network_state(), tuned.best_network_state));
}

TEST(TrainingBert, TheTextModelNeedsABertAndItsVocabulary) {
  try {
    train_run(tiny_mosi(), smoke("bert-finetune"), 7, torch::kCPU);
    FAIL() << "a text model without a BERT ran";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("needs --bert DIR"), std::string::npos) << e.what();
  }
  BertFolder small = smoke_bert(5);
  small.config.vocab = 200;
  small.model = models::Bert(small.config);
  try {
    train_run(tiny_mosi(), smoke("bert-finetune"), 7, torch::kCPU, {}, &small);
    FAIL() << "token ids outside the vocabulary were accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("token ids outside the vocabulary 0..199"), std::string::npos)
        << e.what();
  }
}

// The projections read the data's widths: 32-d text features, MOSI-width audio and vision under the MOSEI recipe.
TEST(TrainingBert, ProjectionsAreSizedFromTheDataWidths) {
  const Config cfg = ablations::resolve_config("mosei", "dmd", "smoke", {"text_encoder=features"});
  FeatureDims d;
  d.text = 32, d.audio = 5, d.vision = 20;
  const models::DMDConfig m = dmd_config_of(cfg, d);
  EXPECT_EQ(m.text_dim, 32);
  EXPECT_EQ(m.audio_dim, 5);
  EXPECT_EQ(m.vision_dim, 20);
  torch::manual_seed(1);
  auto t = build_trainable(cfg, d, torch::kCPU);
  for (const auto& [name, tensor] : t->network_state()) {
    if (name == "proj_l.weight") EXPECT_EQ(tensor.size(1), 32);
    if (name == "proj_a.weight") EXPECT_EQ(tensor.size(1), 5);
    if (name == "proj_v.weight") EXPECT_EQ(tensor.size(1), 20);
  }
}
