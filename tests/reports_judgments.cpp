// Validity judgments on stored runs built by hand: convergence at the epoch cap, the minimal detectable difference
// (against scripts/power_reference.py, a standard-library numerical integration of the noncentral t, and against
// Boost.Math's noncentral t evaluated at the answer), the collapse flag, protocol mismatches and the test-batch
// spread.
#include <gtest/gtest.h>

#include <boost/math/distributions/non_central_t.hpp>
#include <boost/math/distributions/students_t.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

#include "reports/collect.h"
#include "reports/judgments.h"
#include "reports/regress.h"
#include "reports/report.h"
#include "results/metrics.h"
#include "results/store.h"

namespace fs = std::filesystem;
using namespace dmdbench;
using namespace dmdbench::reports;

namespace {

std::vector<results::EpochRow> history(const std::vector<double>& valid_losses) {
  std::vector<results::EpochRow> out;
  for (size_t i = 0; i < valid_losses.size(); ++i)
    out.push_back({static_cast<int>(i + 1), 1.0, valid_losses[i], 1e-4, 1.0, 0.1});
  return out;
}

}  // namespace

TEST(Convergence, CappedRunStillImprovingIsFlagged) {
  // Six epochs, cap 6, early stop 10: the best epoch is the last and it improved 6.3% on the best before the last
  // two epochs (0.80 -> 0.75).
  const auto j = judge_convergence(history({1.2, 1.0, 0.9, 0.8, 0.78, 0.75}), 6, 10);
  EXPECT_TRUE(j.known);
  EXPECT_TRUE(j.capped);
  EXPECT_EQ(j.best_epoch, 6);
  EXPECT_TRUE(j.best_in_window);
  EXPECT_NEAR(j.improvement, (0.80 - 0.75) / 0.80, 1e-12);
  EXPECT_TRUE(j.not_converged);
}

TEST(Convergence, PlateauedRunIsNot) {
  // Capped at 8, best at epoch 5, nothing better in the last two epochs: flat.
  const auto flat = judge_convergence(history({1.0, 0.8, 0.7, 0.65, 0.6, 0.61, 0.62, 0.60}), 8, 10);
  EXPECT_TRUE(flat.capped);
  EXPECT_EQ(flat.best_epoch, 5);  // epoch 8 ties 0.60 and is no improvement (> 1e-6 needed)
  EXPECT_FALSE(flat.best_in_window);
  EXPECT_DOUBLE_EQ(flat.improvement, 0.0);
  EXPECT_FALSE(flat.not_converged);
  // A last-epoch best by 0.2% counts under reading (a) but not under the 0.5% threshold of reading (b).
  const auto tiny = judge_convergence(history({1.0, 0.8, 0.7, 0.65, 0.6, 0.61, 0.62, 0.5988}), 8, 10);
  EXPECT_TRUE(tiny.best_in_window);
  EXPECT_NEAR(tiny.improvement, 0.002, 1e-12);
  EXPECT_FALSE(tiny.not_converged);
  EXPECT_TRUE(judge_convergence(history({1.0, 0.8, 0.7, 0.65, 0.6, 0.61, 0.62, 0.5988}), 8, 10, {2, 0.0}).not_converged);
}

TEST(Convergence, EarlyStoppedOrUncappedRunsAreNotCapped) {
  // Early stop 3 fired at epoch 7 (best 4): even though 7 is the cap, it stopped on its own.
  const auto stopped = judge_convergence(history({1.0, 0.9, 0.8, 0.7, 0.71, 0.72, 0.73}), 7, 3);
  EXPECT_FALSE(stopped.capped);
  EXPECT_FALSE(stopped.not_converged);
  // No cap (paper profile): never capped.
  EXPECT_FALSE(judge_convergence(history({1.0, 0.9, 0.8}), 0, 10).capped);
  // A capped run no longer than the window cannot be judged flat.
  const auto short_run = judge_convergence(history({1.0, 0.9}), 2, 10);
  EXPECT_TRUE(std::isinf(short_run.improvement));
  EXPECT_TRUE(short_run.not_converged);
  EXPECT_FALSE(judge_convergence({}, 6, 10).known);
}

TEST(Power, MinimalDetectableDifferenceMatchesTheNoncentralT) {
  // scripts/power_reference.py (numerical integration of the noncentral t with the standard library).
  EXPECT_NEAR(minimal_detectable_difference(1.0, 3, 3), 3.070891, 2e-5);
  EXPECT_NEAR(minimal_detectable_difference(0.047, 3, 3), 0.144332, 2e-6);
  EXPECT_NEAR(minimal_detectable_difference(2.5, 5, 4), 5.483554, 5e-5);
  EXPECT_NEAR(minimal_detectable_difference(1.0, 9, 9), 1.406927, 2e-5);
  EXPECT_NEAR(minimal_detectable_difference(1.0, 10, 10), 1.324947, 2e-5);
  // Boost.Math at the answer: the two-sided pooled t-test (df 4) has exactly 80% power there.
  const double se = std::sqrt(1.0 / 3 + 1.0 / 3);
  const double delta = minimal_detectable_difference(0.3, 3, 3) / (0.3 * se);
  const double tc = boost::math::quantile(boost::math::complement(boost::math::students_t(4), 0.025));
  const boost::math::non_central_t nct(4, delta);
  EXPECT_NEAR(boost::math::cdf(boost::math::complement(nct, tc)) + boost::math::cdf(nct, -tc), 0.8, 1e-9);
  // The normal approximation is (1.959964 + 0.841621) * sd * sqrt(1/na + 1/nb): much smaller with 3 seeds.
  EXPECT_NEAR(minimal_detectable_difference_normal(1.0, 3, 3), 2.801585 * std::sqrt(2.0 / 3), 1e-5);
  EXPECT_DOUBLE_EQ(minimal_detectable_difference(0.0, 3, 3), 0.0);
  EXPECT_TRUE(std::isnan(minimal_detectable_difference(1.0, 1, 1)));
}

TEST(Power, PooledSdAndSeedsToDetect) {
  // Pooled sd: ((3-1)*0.2^2 + (4-1)*0.1^2) / 5 = 0.022.
  EXPECT_NEAR(pooled_sd({3, 0.0, 0.2}, {4, 0.0, 0.1}), std::sqrt(0.022), 1e-15);
  // With sd 1, n = 10 per side detects 1.325 (MDD 1.324947) and n = 9 does not (MDD 1.406927).
  EXPECT_EQ(seeds_to_detect(1.325, 1.0), 10);
  EXPECT_EQ(seeds_to_detect(1.3249, 1.0), 11);
  EXPECT_EQ(seeds_to_detect(-1.41, 1.0), 9);
  EXPECT_FALSE(seeds_to_detect(0.001, 1.0).has_value());  // beyond 1000 seeds
  EXPECT_FALSE(seeds_to_detect(0.0, 1.0).has_value());
}

TEST(Spread, ConstantPredictionsCollapse) {
  // A model that predicts the same value for every sample: std(pred)/std(label) = 0.
  const std::vector<float> labels = {-2.f, -1.f, 0.f, 1.f, 2.f, 2.6666667f, -3.f, 0.6666667f};
  const std::vector<float> constant(labels.size(), 0.25f);
  const results::MetricValues metrics = results::regression_metrics(constant, labels);
  std::map<std::string, double> test;
  for (const auto& [name, value] : metrics.all()) test[name] = value;
  EXPECT_EQ(test.count("corr"), 1u);  // NaN here; the store leaves it out
  const Spread s = judge_spread(test);
  EXPECT_TRUE(s.known);
  EXPECT_DOUBLE_EQ(s.std_ratio, 0.0);
  EXPECT_TRUE(s.collapsed);
  EXPECT_EQ(s.reason, "std(pred)/std(label) 0.00 < 0.50");
}

TEST(Spread, NarrowPredictionsCollapseAndHealthyOnesDoNot) {
  // Spread 0.62 of the labels' but never beyond ±1.5 while 36% of the labels are: collapsed (tail rule).
  const Spread narrow = judge_spread({{"pred_std_ratio", 0.62}, {"pred_beyond_1_5", 0.0}, {"label_beyond_1_5", 0.36}});
  EXPECT_TRUE(narrow.collapsed);
  EXPECT_EQ(narrow.reason, "|pred| > 1.5 for 0.0% of samples against 36.0% of the labels");
  // 0.85 of the spread and 28% beyond ±1.5: fine. A quarter of the labels' tail share is the bound (9% >= 36%/4).
  EXPECT_FALSE(judge_spread({{"pred_std_ratio", 0.85}, {"pred_beyond_1_5", 0.28}, {"label_beyond_1_5", 0.36}}).collapsed);
  EXPECT_FALSE(judge_spread({{"pred_std_ratio", 0.7}, {"pred_beyond_1_5", 0.09}, {"label_beyond_1_5", 0.36}}).collapsed);
  EXPECT_FALSE(judge_spread({{"mae", 0.5}}).known);  // runs from before the spread metrics
}

namespace {

// A store with hand-made runs: each with an epoch history, a configuration, clean and shuffled test metrics.
class JudgedStore : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "dmd_judged_XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    store_ = std::make_unique<results::Store>((dir_ / "j.sqlite").string());
    store_->add_experiment({"exp", "2025-03-01T00:00:00.000Z", "dmdbench run-ablation", ""});
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  // mae per pass: the clean pass first, then the shuffled passes.
  void add_run(const std::string& variant, int64_t seed, const std::vector<double>& losses, int max_epochs,
               const std::vector<double>& mae_passes, double std_ratio = 0.8,
               const std::string& text_encoder = "bert-features (frozen)") {
    results::RunSpec spec;
    spec.run_id = variant + "-" + std::to_string(seed);
    spec.experiment_id = "exp";
    spec.variant = variant;
    spec.dataset = "synthetic-mosi";
    spec.profile = "quick";
    spec.seed = seed;
    spec.config_json = nlohmann::json{{"max_epochs", max_epochs}, {"early_stop", 10}, {"text_encoder", text_encoder},
                                      {"synthetic_scale", 0.25}}
                           .dump();
    results::Provenance prov;
    prov.git_commit = "c0ffee";
    prov.dataset_sha256 = "ab12";
    store_->start_run(spec, prov);
    for (const auto& e : history(losses)) store_->add_epoch(spec.run_id, e, {});
    std::vector<results::MetricRow> rows = {{"test", "mae", mae_passes[0], -1},
                                            {"test", "acc2_non0", 0.8, -1},
                                            {"test", "pred_std_ratio", std_ratio, -1},
                                            {"test", "pred_beyond_1_5", 0.3, -1},
                                            {"test", "label_beyond_1_5", 0.36, -1}};
    std::vector<results::BatchOrderRow> orders = {{"test", 7}};
    for (size_t i = 1; i < mae_passes.size(); ++i) {
      const std::string split = "test_shuffle_" + std::to_string(i);
      rows.push_back({split, "mae", mae_passes[i], -1});
      orders.push_back({split, 7 + i});
    }
    store_->complete_run(spec.run_id, 1, 1.0, rows, {}, {}, "", orders);
  }
  fs::path dir_;
  std::unique_ptr<results::Store> store_;
};

const std::vector<double> kRising = {1.0, 0.9, 0.8, 0.7};   // capped at 4 and still improving
const std::vector<double> kFlat = {1.0, 0.7, 0.71, 0.72};    // best at epoch 2

}  // namespace

TEST_F(JudgedStore, GroupJudgmentsFromTheStore) {
  // dmd: two capped runs still improving. mult: flat. fixed-edges: flat, but another text input.
  add_run("dmd", 1, kRising, 4, {0.70, 0.72, 0.68});
  add_run("dmd", 2, kRising, 4, {0.74, 0.74, 0.74});
  add_run("mult", 1, kFlat, 4, {0.60, 0.61, 0.59}, 0.0);
  add_run("mult", 2, kFlat, 4, {0.62, 0.62, 0.62});
  add_run("fixed-edges", 1, kFlat, 4, {0.70, 0.70, 0.70}, 0.8, "glove");
  add_run("fixed-edges", 2, kFlat, 4, {0.72, 0.72, 0.72}, 0.8, "glove");
  const Collected c = collect(*store_, "exp", {"dmd", "fixed-edges", "mult"});
  ASSERT_EQ(c.groups.size(), 1u);
  const GroupJudgments j = judge_group(c, c.groups[0]);
  EXPECT_EQ(j.max_epochs, 4);
  EXPECT_EQ(j.variants.at("dmd").not_converged, 2);
  EXPECT_EQ(j.variants.at("dmd").flags, std::vector<std::string>{"not converged 2/2"});
  EXPECT_EQ(j.variants.at("mult").flags, std::vector<std::string>{"collapsed toward the mean 1/2"});
  EXPECT_TRUE(j.variants.at("fixed-edges").valid());
  EXPECT_TRUE(j.mixes_converged_and_capped());
  ASSERT_EQ(j.comparisons.size(), 2u);
  const Comparison& fe = j.comparisons[0];
  EXPECT_EQ(fe.variant, "fixed-edges");
  ASSERT_EQ(fe.mismatches.size(), 1u);
  EXPECT_EQ(fe.mismatches[0], "text_encoder differs: `bert-features (frozen)` (dmd ×2); `glove` (fixed-edges ×2)");
  EXPECT_FALSE(fe.valid());
  EXPECT_EQ(fe.reasons[0], "dmd: not converged 2/2");
  // MAE: dmd 0.70, 0.74 (sd 0.028284), fixed-edges 0.70, 0.72 (sd 0.014142): pooled sd sqrt((0.0008 + 0.0002)/2),
  // MDD with df 2 from the noncentral t; |Δ| = 0.01 is far below it.
  const PowerCell& mae = fe.power.at("mae");
  EXPECT_NEAR(mae.diff, -0.01, 1e-12);
  EXPECT_NEAR(mae.sd, std::sqrt(0.0005), 1e-12);
  EXPECT_NEAR(mae.mdd, minimal_detectable_difference(std::sqrt(0.0005), 2, 2), 1e-12);
  EXPECT_TRUE(mae.underpowered);
  const Comparison& mult = j.comparisons[1];
  EXPECT_EQ(mult.reasons, (std::vector<std::string>{"dmd: not converged 2/2", "mult: collapsed toward the mean 1/2"}));
  EXPECT_EQ(j.group_mismatches.size(), 1u);
  // Test-batch spread of dmd's MAE: run 1 passes 0.70, 0.72, 0.68 (variance 0.0004), run 2 constant (0):
  // sqrt(mean) = sqrt(0.0002); across seeds the clean MAE 0.70, 0.74 has sd 0.028284.
  const EvalSensitivity& s = j.sensitivity.at("dmd").at("mae");
  EXPECT_EQ(s.runs, 2);
  EXPECT_EQ(s.passes, 3);
  EXPECT_NEAR(s.eval_sd, std::sqrt(0.0002), 1e-12);
  EXPECT_NEAR(s.seed_sd, std::sqrt(0.0008), 1e-12);
  EXPECT_EQ(j.sensitivity.at("dmd").count("acc2_non0"), 0u);  // no shuffled passes stored for it
}

TEST_F(JudgedStore, ReportShowsTheJudgmentsBesideTheNumbers) {
  add_run("dmd", 1, kRising, 4, {0.70, 0.72, 0.68});
  add_run("dmd", 2, kRising, 4, {0.74, 0.74, 0.74});
  add_run("mult", 1, kFlat, 4, {0.60, 0.61, 0.59});
  add_run("mult", 2, kFlat, 4, {0.62, 0.62, 0.62});
  ReportOptions o;
  o.out_path = (dir_ / "r.md").string();
  o.variants = {{"dmd", "full"}, {"mult", "baseline"}};
  o.gnuplot = "/nonexistent/gnuplot";
  write_report(*store_, o);
  std::ifstream in(o.out_path);
  const std::string md{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  EXPECT_NE(md.find("**Warning: this comparison mixes converged and capped variants.** `dmd` was still improving "
                    "at the 4-epoch cap while `mult` had converged"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("0 of 1 comparisons with full DMD are VALID (INVALID: `mult`)"), std::string::npos);
  EXPECT_NE(md.find("## How to read this report\n\n2 of 4 runs were still improving when the 4-epoch cap stopped "
                    "them (`dmd` 2/2)"),
            std::string::npos);
  EXPECT_NE(md.find("| `dmd` | 2 |"), std::string::npos);
  EXPECT_NE(md.find("| INVALID: not converged 2/2 |"), std::string::npos);
  EXPECT_NE(md.find("| `mult` | 2 |"), std::string::npos);
  // MAE: dmd 0.70, 0.74; mult 0.60, 0.62: Δ -0.1100, Welch t = -5.5, df 1.47; pooled sd sqrt(0.0005).
  EXPECT_NE(md.find("| `mult` | -0.1100 (p="), std::string::npos);
  EXPECT_NE(md.find("| INVALID: dmd: not converged 2/2 |"), std::string::npos);
  EXPECT_NE(md.find("| `dmd` | 2 | 4, 4 | 4, 4 | 2/2 | 2/2 | 2/2 | 22.2%, 22.2% |"), std::string::npos);
  EXPECT_NE(md.find("| `mult` | 2 | 4, 4 | 2, 2 | 2/2 | 0/2 | 0/2 | -1.4%, -1.4% |"), std::string::npos);
  EXPECT_NE(md.find("Every compared row shares one protocol: dataset `synthetic-mosi`"), std::string::npos);
}

TEST_F(JudgedStore, RegressPrintsInvalidJudgmentsAndFailsOnThemWhenAsked) {
  add_run("dmd", 1, kRising, 4, {0.70});
  add_run("dmd", 2, kRising, 4, {0.74});
  add_run("mult", 1, kFlat, 4, {0.60});
  add_run("mult", 2, kFlat, 4, {0.62});
  RegressOptions o;
  o.baseline_path = (dir_ / "base.json").string();
  o.update_baseline = true;
  std::ostringstream out;
  ASSERT_EQ(regress(*store_, o, out), 0) << out.str();
  o.update_baseline = false;
  out.str("");
  EXPECT_EQ(regress(*store_, o, out), 0) << out.str();  // same results: PASS, the judgment is information
  EXPECT_NE(out.str().find("judgment: dmd INVALID: not converged 2/2\n"), std::string::npos) << out.str();
  EXPECT_EQ(out.str().find("judgment: mult"), std::string::npos);
  o.require_valid = true;
  out.str("");
  EXPECT_EQ(regress(*store_, o, out), 1);
  EXPECT_NE(out.str().find("regress: FAIL, 0 regressions, 0 improvements, 10 within tolerance, 0 missing, results "
                           "judged INVALID (--require-valid)\n"),
            std::string::npos)
      << out.str();
}

TEST_F(JudgedStore, RegressRequireValidPassesConvergedRuns) {
  add_run("dmd", 1, kFlat, 4, {0.70});
  add_run("dmd", 2, kFlat, 4, {0.74});
  RegressOptions o;
  o.baseline_path = (dir_ / "base.json").string();
  o.update_baseline = true;
  std::ostringstream out;
  ASSERT_EQ(regress(*store_, o, out), 0);
  o.update_baseline = false, o.require_valid = true;
  out.str("");
  EXPECT_EQ(regress(*store_, o, out), 0) << out.str();
  EXPECT_NE(out.str().find("judgment: VALID"), std::string::npos);
}
