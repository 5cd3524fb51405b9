// The regression gate against a baseline file and against the published numbers. Tolerances by hand:
// baseline MAE 0.7000 ± 0.0100 (n = 3), k = 3 -> max(0.005, 3 * 0.01 / sqrt(3)) = 0.0173.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "reports/regress.h"
#include "reports/report.h"
#include "results/store.h"

namespace dmdbench::testing {
void add_fake_run(results::Store& store, const std::string& experiment, const std::string& variant,
                  const std::string& dataset, int64_t seed, const std::map<std::string, double>& metrics,
                  const std::vector<std::string>& edges);
}

namespace fs = std::filesystem;
using namespace dmdbench;
using dmdbench::testing::add_fake_run;

namespace {

std::map<std::string, double> metrics(double mae, double acc2_non0, double f1_non0 = 0.85, double acc7 = 0.46) {
  return {{"mae", mae},      {"corr", 0.77},   {"acc2_has0", 0.84}, {"f1_has0", 0.83}, {"acc2_non0", acc2_non0},
          {"f1_non0", f1_non0}, {"acc3", 0.60}, {"acc5", 0.52},      {"acc7", acc7}};
}

class RegressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "dmd_regress_XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    store_ = std::make_unique<results::Store>((dir_ / "r.sqlite").string());
    baseline_ = (dir_ / "baselines" / "smoke.json").string();
    add_experiment("exp-1", 0.70, 0.86);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  // dmd and dmd_nohomo over three seeds at mean - 0.01, mean, mean + 0.01.
  void add_experiment(const std::string& id, double dmd_mae, double dmd_acc2, bool with_nohomo = true) {
    store_->add_experiment({id, "2025-03-0" + std::to_string(++created_) + "T00:00:00.000Z", "", ""});
    for (int i = 0; i < 3; ++i) {
      const double d = 0.01 * (i - 1);
      add_fake_run(*store_, id, "dmd", "synthetic-mosi", 1111 + i, metrics(dmd_mae + d, dmd_acc2 + d), {});
      if (with_nohomo)
        add_fake_run(*store_, id, "dmd_nohomo", "synthetic-mosi", 1111 + i, metrics(0.73 + d, 0.84 + d), {});
    }
  }
  int run(const reports::RegressOptions& o) {
    out_.str("");
    return reports::regress(*store_, o, out_);
  }
  reports::RegressOptions options() const {
    reports::RegressOptions o;
    o.baseline_path = baseline_;
    return o;
  }
  int write_baseline() {
    auto o = options();
    o.update_baseline = true;
    return run(o);
  }
  fs::path dir_;
  std::string baseline_;
  int created_ = 0;
  std::unique_ptr<results::Store> store_;
  std::ostringstream out_;
};

}  // namespace

TEST_F(RegressTest, UpdateBaselineRoundTrip) {
  ASSERT_EQ(write_baseline(), 0);
  EXPECT_EQ(out_.str(), "wrote baseline " + baseline_ +
                            ": 2 variants, 18 metrics (dataset synthetic-mosi, profile smoke, experiment exp-1)\n");
  std::ifstream in(baseline_);
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["dataset"], "synthetic-mosi");
  EXPECT_EQ(j["profile"], "smoke");
  EXPECT_EQ(j["k"], 3.0);
  EXPECT_EQ(j["tolerances"]["mae"], 0.005);
  EXPECT_EQ(j["tolerances"]["acc2_non0"], 0.5);
  EXPECT_EQ(j["experiment"], "exp-1");
  EXPECT_EQ(j["git_commit"], "0123abcd4567");
  EXPECT_DOUBLE_EQ(j["variants"]["dmd"]["mae"]["mean"].get<double>(), 0.7);
  EXPECT_DOUBLE_EQ(j["variants"]["dmd"]["mae"]["std"].get<double>(), 0.01);
  EXPECT_EQ(j["variants"]["dmd"]["mae"]["n"], 3);
  EXPECT_DOUBLE_EQ(j["variants"]["dmd"]["acc2_non0"]["mean"].get<double>(), 86.0);  // percent
  EXPECT_DOUBLE_EQ(j["variants"]["dmd"]["acc2_non0"]["std"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["variants"]["dmd_nohomo"]["mae"]["mean"].get<double>(), 0.73);
  EXPECT_DOUBLE_EQ(j["variants"]["dmd"]["acc7"]["std"].get<double>(), 0.0);
  for (const auto& entry : fs::directory_iterator(fs::path(baseline_).parent_path()))
    EXPECT_EQ(entry.path().filename(), "smoke.json");  // no temporary left behind

  // Tuned tolerances survive an update.
  auto edited = j;
  edited["tolerances"]["mae"] = 0.02;
  edited["k"] = 2;
  std::ofstream(baseline_) << edited.dump(2);
  ASSERT_EQ(write_baseline(), 0);
  std::ifstream again(baseline_);
  const auto j2 = nlohmann::json::parse(again);
  EXPECT_EQ(j2["tolerances"]["mae"], 0.02);
  EXPECT_EQ(j2["k"], 2);
  EXPECT_EQ(j2["variants"], j["variants"]);
}

TEST_F(RegressTest, SameResultsPass) {
  ASSERT_EQ(write_baseline(), 0);
  EXPECT_EQ(run(options()), 0);
  EXPECT_EQ(out_.str(),
            "regress: experiment exp-1, dataset synthetic-mosi, profile smoke against baseline " + baseline_ +
                " (k = 3)\n"
                "regress: PASS, 0 regressions, 0 improvements, 18 within tolerance, 0 missing\n");
}

TEST_F(RegressTest, WorseMaeBeyondToleranceFails) {
  ASSERT_EQ(write_baseline(), 0);
  add_experiment("exp-2", 0.75, 0.86);
  EXPECT_EQ(run(options()), 1);
  EXPECT_NE(out_.str().find("dmd mae: baseline 0.7000 ± 0.0100 (n=3), now 0.7500 (n=3), change +0.0500, tolerance "
                            "0.0173: REGRESSION\n"),
            std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find("regress: FAIL, 1 regression, 0 improvements, 17 within tolerance, 0 missing"),
            std::string::npos);
  // Within k * std / sqrt(n): +0.015 < 0.0173 passes.
  add_experiment("exp-3", 0.715, 0.86);
  EXPECT_EQ(run(options()), 0) << out_.str();
  // The older experiment can still be checked by id.
  auto o = options();
  o.experiment = "exp-1";
  EXPECT_EQ(run(o), 0);
}

TEST_F(RegressTest, ImprovementPassesAndIsReported) {
  ASSERT_EQ(write_baseline(), 0);
  add_experiment("exp-2", 0.65, 0.89);
  EXPECT_EQ(run(options()), 0);
  EXPECT_NE(out_.str().find("dmd mae: baseline 0.7000 ± 0.0100 (n=3), now 0.6500 (n=3), change -0.0500, tolerance "
                            "0.0173: improved\n"),
            std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find("dmd acc2_non0: baseline 86.00 ± 1.00 (n=3), now 89.00 (n=3), change +3.00, tolerance "
                            "1.73: improved\n"),
            std::string::npos);
  EXPECT_NE(out_.str().find("regress: PASS, 0 regressions, 2 improvements"), std::string::npos);
}

TEST_F(RegressTest, AccuracyDropFailsInPercentPoints) {
  ASSERT_EQ(write_baseline(), 0);
  add_experiment("exp-2", 0.70, 0.83);
  EXPECT_EQ(run(options()), 1);
  EXPECT_NE(out_.str().find("dmd acc2_non0: baseline 86.00 ± 1.00 (n=3), now 83.00 (n=3), change -3.00, tolerance "
                            "1.73: REGRESSION"),
            std::string::npos)
      << out_.str();
}

TEST_F(RegressTest, MissingVariantsAreReported) {
  ASSERT_EQ(write_baseline(), 0);
  add_experiment("exp-2", 0.70, 0.86, /*with_nohomo=*/false);
  add_fake_run(*store_, "exp-2", "dmd_nohetero", "synthetic-mosi", 1111, metrics(0.7, 0.86), {});
  EXPECT_EQ(run(options()), 0);
  EXPECT_NE(out_.str().find("dmd_nohomo: missing from the database (in the baseline, no completed runs now)\n"),
            std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find("dmd_nohetero: not in the baseline (new variant; --update-baseline adds it)\n"),
            std::string::npos);
  EXPECT_NE(out_.str().find("regress: PASS, 0 regressions, 0 improvements, 9 within tolerance, 2 missing"),
            std::string::npos);
}

TEST_F(RegressTest, AbsoluteToleranceFromAHandWrittenBaseline) {
  nlohmann::json j = {{"dataset", "synthetic-mosi"},
                      {"profile", "smoke"},
                      {"k", 3},
                      {"tolerances", {{"mae", 0.005}}},
                      {"variants", {{"dmd", {{"mae", {{"mean", 0.696}, {"std", 0.0}, {"n", 3}}}}}}}};
  fs::create_directories(fs::path(baseline_).parent_path());
  std::ofstream(baseline_) << j.dump();
  EXPECT_EQ(run(options()), 0) << out_.str();  // 0.7000 - 0.696 = 0.004 < 0.005
  j["variants"]["dmd"]["mae"]["mean"] = 0.694;
  std::ofstream(baseline_) << j.dump();
  EXPECT_EQ(run(options()), 1);  // 0.006 > 0.005
  EXPECT_NE(out_.str().find("dmd mae: baseline 0.6940 ± 0.0000 (n=3), now 0.7000 (n=3), change +0.0060, tolerance "
                            "0.0050: REGRESSION"),
            std::string::npos)
      << out_.str();
}

TEST_F(RegressTest, NoMatchingResultsFails) {
  nlohmann::json j = {{"dataset", "synthetic-mosei"}, {"profile", "smoke"}, {"variants", nlohmann::json::object()}};
  fs::create_directories(fs::path(baseline_).parent_path());
  std::ofstream(baseline_) << j.dump();
  EXPECT_EQ(run(options()), 1);
  EXPECT_NE(out_.str().find("regress: FAIL, no completed runs for dataset synthetic-mosei, profile smoke in "
                            "experiment exp-1; nothing compared"),
            std::string::npos)
      << out_.str();
}

TEST_F(RegressTest, ErrorsNameTheBaseline) {
  const auto missing = (dir_ / "nope.json").string();
  auto o = options();
  o.baseline_path = missing;
  try {
    run(o);
    ADD_FAILURE() << "a missing baseline must be refused";
  } catch (const reports::ReportError& e) {
    EXPECT_EQ(std::string(e.what()), "cannot read baseline " + missing + ": no such file");
  }
  std::ofstream(missing) << "{not json";
  try {
    run(o);
    ADD_FAILURE() << "an invalid baseline must be refused";
  } catch (const reports::ReportError& e) {
    EXPECT_EQ(std::string(e.what()), "baseline " + missing + " is not a JSON object");
  }
}

TEST_F(RegressTest, AgainstPublishedOnSyntheticDataSaysSoAndPasses) {
  auto o = options();
  o.against = "published";
  EXPECT_EQ(run(o), 0);
  EXPECT_EQ(out_.str(),
            "synthetic-mosi · profile smoke: no published reference applies to synthetic data\n"
            "regress: PASS, nothing compared: no published reference applies to these results\n");
}

TEST_F(RegressTest, AgainstPublishedUsesPaperAndRerunTolerances) {
  // Paper (aligned, BERT): Acc-7 45.6, Acc-2 86.0, F1 86.0; rerun means (DLF, CACR, fork):
  // Acc-2 (83.23 + 84.15 + 84.76) / 3 = 84.05, F1 84.06, Acc-7 46.01.
  store_->add_experiment({"exp-real", "2025-04-01T00:00:00.000Z", "", ""});
  for (int seed = 1; seed <= 2; ++seed)
    add_fake_run(*store_, "exp-real", "dmd", "mosi:/data/MOSI/aligned_50.pkl", seed,
                 metrics(0.72, 0.845, 0.84, 0.46), {});
  auto o = options();
  o.against = "published";
  EXPECT_EQ(run(o), 0) << out_.str();
  const std::string title = "mosi:/data/MOSI/aligned_50.pkl · aligned · profile smoke";
  EXPECT_NE(out_.str().find(title + " dmd acc2_non0 vs paper (dmd-cvpr2023, aligned, bert text features; "
                                    "same text protocol, bert-finetune): published "
                                    "86.00, now 84.50 (n=2), change -1.50, tolerance 3.00: ok\n"),
            std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find(title + " dmd acc2_non0 vs rerun mean (dlf-aaai2025, cacr-cvpr2026, "
                                    "fork-seed1111; same text protocol, bert-finetune): "
                                    "published 84.05, now 84.50 (n=2), change +0.45, tolerance 1.50: ok\n"),
            std::string::npos);
  EXPECT_NE(out_.str().find("regress: PASS, 0 of 6 comparisons"), std::string::npos);

  store_->add_experiment({"exp-real-2", "2025-04-02T00:00:00.000Z", "", ""});
  for (int seed = 1; seed <= 2; ++seed)
    add_fake_run(*store_, "exp-real-2", "dmd", "mosi:/data/MOSI/aligned_50.pkl", seed,
                 metrics(0.72, 0.825, 0.84, 0.46), {});
  EXPECT_EQ(run(o), 1);
  // 82.50 is 3.5 under the paper (tolerance 3.0) and 1.55 under the reruns (tolerance 1.5).
  EXPECT_NE(out_.str().find("acc2_non0 vs paper (dmd-cvpr2023, aligned, bert text features; same text "
                            "protocol, bert-finetune): published 86.00, now "
                            "82.50 (n=2), change -3.50, tolerance 3.00: REGRESSION"),
            std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find(
                "acc2_non0 vs rerun mean (dlf-aaai2025, cacr-cvpr2026, fork-seed1111; same text protocol, "
                "bert-finetune): published 84.05, "
                "now 82.50 (n=2), change -1.55, tolerance 1.50: REGRESSION"),
            std::string::npos);
  EXPECT_NE(out_.str().find("regress: FAIL, 2 of 6 comparisons"), std::string::npos);
}

TEST_F(RegressTest, AgainstPublishedPicksThePaperRowOfOurTextProtocol) {
  // GloVe features (text width 300): the paper's unstarred row (aligned MOSI: Acc-2 84.5); the reruns
  // fine-tuned BERT, which the label says.
  store_->add_experiment({"exp-glove", "2025-04-03T00:00:00.000Z", "", ""});
  for (int seed = 1; seed <= 2; ++seed)
    add_fake_run(*store_, "exp-glove", "dmd", "mosi:/data/MOSI/aligned_glove.pkl", seed,
                 metrics(0.72, 0.845, 0.84, 0.46), {});
  auto o = options();
  o.against = "published";
  run(o);
  EXPECT_NE(out_.str().find(
                "dmd acc2_non0 vs paper (dmd-cvpr2023, aligned, glove text features; same text protocol, "
                "features (GloVe 300-d)): published 84.50, now 84.50"),
            std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find(
                "vs rerun mean (dlf-aaai2025, cacr-cvpr2026, fork-seed1111; text protocol bert-finetune, "
                "ours features (GloVe 300-d)): published 84.05"),
            std::string::npos)
      << out_.str();
}
