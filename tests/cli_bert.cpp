// The BERT text encoder from the command line: `evaluate --bert` reproduces the reference's outputs on the
// golden bert-tiny files; `--profile paper` (the default on real data) refuses without --bert in one
// sentence; a smoke ablation with a small random BERT folder (made from
// tests/fixtures/bert-smoke/config.json) runs every variant and records the text protocol, the weights'
// SHA-256 and the resolved BERT config with each run; other weights are other runs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "results/store.h"
#include "tests/cli_support.h"

namespace fs = std::filesystem;
using dmdbench::testing::run_dmdbench;

namespace {

const std::string kGolden = std::string(DMDBENCH_SHARED_DIR) + "/golden/bert-tiny/";
const std::string kSmokeConfig = std::string(DMDBENCH_SOURCE_DIR) + "/tests/fixtures/bert-smoke/config.json";

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
    rows.push_back(cells);
  }
  return rows;
}

// A random BERT folder from the smoke config (seed given), made by `dmdbench data random-bert`.
fs::path random_bert(const fs::path& dir, int seed) {
  const fs::path out = dir / ("bert-" + std::to_string(seed));
  const auto r = run_dmdbench("data random-bert " + kSmokeConfig + " --out " + out.string() + " --seed " +
                              std::to_string(seed));
  EXPECT_EQ(r.code, 0) << r.out;
  return out;
}

}  // namespace

TEST(CliBert, EvaluateWithBertReproducesTheGoldenEvalOutputs) {
  const fs::path dir = dmdbench::testing::fresh_dir("clibert", "eval");
  const std::string csv = (dir / "P.csv").string();
  for (const char* folder : {"bert", "bert/"}) {
    const auto r =
        run_dmdbench("evaluate --device cpu --checkpoint " + kGolden + "state_dict.pth --data " + kGolden +
                     "data.pkl --config mosei --bert " + kGolden + folder + " --predictions " + csv);
    ASSERT_EQ(r.code, 0) << r.out;
  }
  const auto ours = read_csv(csv), expected = read_csv(kGolden + "expected_eval.csv");
  ASSERT_EQ(ours.size(), expected.size());
  ASSERT_GT(ours.size(), 1u);
  double worst = 0;
  for (std::size_t r = 1; r < ours.size(); ++r) {
    ASSERT_EQ(ours[r].size(), 10u);
    EXPECT_EQ(ours[r][0], expected[r][0]);
    for (std::size_t c = 2; c < 10; ++c) {
      const double a = std::stod(ours[r][c]), b = std::stod(expected[r][c]);
      worst = std::max(worst, std::abs(a - b));
      EXPECT_LE(std::abs(a - b), 1e-4) << "row " << r << " " << expected[0][c];
    }
  }
  std::cout << "[golden bert evaluate] max abs error " << worst << "\n";
  fs::remove_all(dir);
}

TEST(CliBert, EvaluateRefusesTokenIdsOutsideTheBertsVocabulary) {
  const fs::path dir = dmdbench::testing::fresh_dir("clibert", "vocab");
  // The smoke config with a 100-token vocabulary: the golden data's ids (up to 511) do not fit.
  auto j = nlohmann::json::parse(std::ifstream(kSmokeConfig));
  j["vocab_size"] = 100;
  fs::create_directories(dir / "cfg");
  std::ofstream(dir / "cfg" / "config.json") << j.dump();
  ASSERT_EQ(run_dmdbench("data random-bert " + (dir / "cfg" / "config.json").string() + " --out " +
                         (dir / "small").string())
                .code,
            0);
  const auto r = run_dmdbench("evaluate --device cpu --checkpoint " + kGolden + "state_dict.pth --data " +
                              kGolden + "data.pkl --config mosei --bert " + (dir / "small").string());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("split 'train' text_bert holds "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("token ids outside the vocabulary 0..99"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

TEST(CliBert, PaperProfileRefusesWithoutBertInOneSentence) {
  // Real data: the default profile is paper, whose text encoder is the fine-tuned BERT.
  for (const std::string verb : {"train", "run-ablation --no-report --db /dev/null/none.sqlite"}) {
    const auto r = run_dmdbench(verb + " --device cpu --dataset mosei:" + kGolden + "data.pkl");
    EXPECT_NE(r.code, 0) << verb;
    EXPECT_NE(
        r.out.find("text_encoder=bert-finetune fine-tunes or runs bert-base-uncased and needs --bert DIR"),
        std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("--set text_encoder=features runs the frozen-feature protocol instead"),
              std::string::npos);
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  }
  // Synthetic data keeps the quick profile and the features.
  const auto r = run_dmdbench("run-ablation --emit-sbatch 2 --dataset synthetic-mosi");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("--profile 'quick'"), std::string::npos) << r.out;
  const auto real = run_dmdbench(
      "run-ablation --emit-sbatch 2 --set text_encoder=features --dataset mosei:" + kGolden + "data.pkl");
  EXPECT_EQ(real.code, 0) << real.out;
  EXPECT_NE(real.out.find("--profile 'paper'"), std::string::npos) << real.out;
  EXPECT_NE(run_dmdbench("train --set text_encoder=glove")
                .out.find("configuration key 'text_encoder' expects bert-finetune, bert-frozen or features"),
            std::string::npos);
}

TEST(CliBert, SmokeAblationWithARandomBertRunsEveryVariantAndRecordsIt) {
  const fs::path dir = dmdbench::testing::fresh_dir("clibert", "smoke");
  const fs::path bert = random_bert(dir, 1);
  const std::string db = (dir / "smoke.sqlite").string();
  // Small: 5% of synthetic MOSI, 2 epochs (CI budget).
  const std::string small = " --dataset synthetic-mosi@0.05 --set max_epochs=2";
  const auto r = run_dmdbench("run-ablation --profile smoke --seeds 1111 --jobs 2 --no-report --db " + db +
                              small + " --bert " + bert.string());
  ASSERT_EQ(r.code, 0) << r.out;
  std::ifstream weights(bert / "model.safetensors", std::ios::binary);
  ASSERT_TRUE(weights);
  const auto info = run_dmdbench("data random-bert " + kSmokeConfig + " --out " + (dir / "again").string());
  const std::string sha_line = info.out.substr(info.out.find("weights sha256 ") + 15, 64);  // seed 1 again

  dmdbench::results::Store store(db, true);
  const auto runs = store.runs();
  std::set<std::string> variants;
  for (const auto& run : runs) {
    ASSERT_EQ(run.status, dmdbench::results::RunStatus::Completed) << run.spec.variant << ": " << run.error;
    variants.insert(run.spec.variant);
    const auto cfg = nlohmann::json::parse(run.spec.config_json);
    if (run.spec.variant == "mult") {  // MMSA's MulT reads the text features
      EXPECT_EQ(cfg.at("text_encoder"), "features");
      EXPECT_EQ(run.prov.text_model_sha256, "");
      EXPECT_EQ(run.prov.text_width, 768);
    } else {
      EXPECT_EQ(cfg.at("text_encoder"), "bert-finetune") << run.spec.variant;
      EXPECT_EQ(run.prov.text_model_sha256, sha_line) << run.spec.variant;
      EXPECT_EQ(nlohmann::json::parse(run.prov.text_model_config).at("hidden_size"), 32);
      EXPECT_EQ(run.prov.text_width, 32);
    }
  }
  EXPECT_EQ(variants.size(), 7u);

  // Other weights are other runs: the same command with another folder plans new run ids for the BERT
  // variants.
  const fs::path other = random_bert(dir, 2);
  const auto again = run_dmdbench(
      "run-ablation --profile smoke --seeds 1111 --variants dmd,mult --jobs 1 --no-report --db " + db + small +
      " --bert " + other.string());
  ASSERT_EQ(again.code, 0) << again.out;
  EXPECT_NE(again.out.find("1 already completed, 1 to run"), std::string::npos)
      << again.out;  // mult unchanged
  fs::remove_all(dir);
}
