// The Markdown report on a fake store: 3 variants x 3 seeds on synthetic data, an unregistered variant with one
// seed, a failed run, and a real-data (mosi:) group. Expected cells are computed by hand: seeds sit at
// mean - 0.01, mean, mean + 0.01, so every std is 0.0100 (1.00 points); Welch p-values from the regularized
// incomplete beta function (mpmath): t = 3.6742, df = 4 -> p = 0.0213; t = -2.4495, df = 4 -> p = 0.0705.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "reports/published.h"
#include "reports/published_data.h"
#include "reports/report.h"
#include "results/store.h"

#include <nlohmann/json.hpp>

namespace dmdbench::testing {
void add_fake_run(results::Store& store, const std::string& experiment, const std::string& variant,
                  const std::string& dataset, int64_t seed, const std::map<std::string, double>& metrics,
                  const std::vector<std::string>& edges);
}

namespace fs = std::filesystem;
using namespace dmdbench;
using dmdbench::testing::add_fake_run;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::map<std::string, double> metrics_at(double mae, double corr, double acc2_non0, double offset) {
  return {{"mae", mae + offset},          {"corr", corr + offset},      {"acc2_has0", 0.84 + offset},
          {"f1_has0", 0.83 + offset},     {"acc2_non0", acc2_non0 + offset}, {"f1_non0", acc2_non0 - 0.01 + offset},
          {"acc3", 0.60},                 {"acc5", 0.52 + offset},      {"acc7", 0.46 + offset}};
}

class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "dmd_report_XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    store_ = std::make_unique<results::Store>((dir_ / "r.sqlite").string());
    store_->add_experiment({"exp-old", "2025-01-01T00:00:00.000Z", "old", ""});
    add_fake_run(*store_, "exp-old", "dmd", "synthetic-mosi", 1, metrics_at(0.99, 0.1, 0.5, 0), {});
    store_->add_experiment({"exp-test", "2025-02-01T00:00:00.000Z", "dmdbench run-ablation --seeds 3",
                            "three variants"});
    const double offsets[] = {-0.01, 0.0, 0.01};
    for (int i = 0; i < 3; ++i) {
      add_fake_run(*store_, "exp-test", "dmd", "synthetic-mosi", 1111 + i, metrics_at(0.70, 0.77, 0.86, offsets[i]),
                   {"homo", "hetero"});
      add_fake_run(*store_, "exp-test", "dmd_nohomo", "synthetic-mosi", 1111 + i,
                   metrics_at(0.73, 0.75, 0.84, offsets[i]), {"hetero"});
      add_fake_run(*store_, "exp-test", "dmd_nohetero", "synthetic-mosi", 1111 + i,
                   metrics_at(0.70, 0.76, 0.87, offsets[i]), {"homo"});
    }
    add_fake_run(*store_, "exp-test", "mystery", "synthetic-mosi", 1111, metrics_at(0.80, 0.70, 0.80, 0), {});
    results::RunSpec failed;
    failed.run_id = "failed-run-0001";
    failed.experiment_id = "exp-test";
    failed.variant = "dmd_nohomo";
    failed.dataset = "synthetic-mosi";
    failed.profile = "smoke";
    failed.seed = 1114;
    failed.config_json = R"({"text_encoder":"features"})";  // the same configuration as its variant's other runs
    store_->start_run(failed, {});
    store_->fail_run("failed-run-0001", "loss became NaN at epoch 3");
    for (int i = 0; i < 2; ++i)
      add_fake_run(*store_, "exp-test", "dmd", "mosi:/data/MOSI/aligned_50.pkl", 1 + i,
                   metrics_at(0.72, 0.78, 0.85, offsets[i]), {});
    results::BenchRow step{"bench-1", "train_step/dmd/mosi/batch:16/threads:1", 4e8, 4e8, 40, 3, 96 << 20,
                           {}};
    // 40 samples/s x 1e9 FLOP = 40 GFLOP/s, 25% of 160; products 5e8 FLOP in 6.25 ms = 80 GFLOP/s, 50%
    step.flops_per_sample = 1e9, step.product_flops_per_sample = 5e8, step.product_ms_per_sample = 6.25;
    step.mm_gflops = 160;
    store_->add_bench({{"bench-1", "BM_DmdForward/16", 2.5e6, 3.0e6, 6400, 10, 48 << 20, {}}, step});

    options_.db_path = store_->path();
    options_.out_path = (dir_ / "out" / "latest.md").string();
    options_.variants = {{"dmd", "Full DMD: decoupling, HomoGD, cross-modal attention, HeteroGD"},
                         {"dmd_nohetero", "Without the heterogeneous graph distillation"},
                         {"dmd_nohomo", "Without the homogeneous graph distillation"},
                         {"mult", "MulT baseline (not run here)"}};
    options_.command = "dmdbench report --db r.sqlite --out out/latest.md";
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  std::string report() {
    reports::write_report(*store_, options_);
    return slurp(options_.out_path);
  }
  fs::path dir_;
  std::unique_ptr<results::Store> store_;
  reports::ReportOptions options_;
};

}  // namespace

TEST_F(ReportTest, SummaryTableCellsBoldAndOrder) {
  const auto md = report();
  EXPECT_NE(md.find("Experiment `exp-test` (created 2025-02-01T00:00:00.000Z): three variants. Command: "
                    "`dmdbench run-ablation --seeds 3`."), std::string::npos);
  EXPECT_NE(md.find("Runs: 12 completed, 1 failed, 0 interrupted, 0 running, 0 queued."), std::string::npos);
  EXPECT_EQ(md.find("0.9900"), std::string::npos) << "the older experiment must not appear";
  EXPECT_NE(md.find("## synthetic-mosi · profile smoke"), std::string::npos);
  EXPECT_NE(md.find("| variant | text | n | MAE | Corr | Acc-2 has0 | F1 has0 | Acc-2 non0 | F1 non0 | Acc-3 | Acc-5 | Acc-7 |"),
            std::string::npos);
  // Rows in registry order (dmd, dmd_nohetero, dmd_nohomo), the unknown name last; MAE tie -> both bold.
  // Columns where every variant ties (has0, Acc-5, Acc-7 here) have no bold.
  EXPECT_NE(md.find("| `dmd` | features (768-d) | 3 | **0.7000 ± 0.0100** | **0.7700 ± 0.0100** | 84.00 ± 1.00 | 83.00 ± 1.00 | "
                    "86.00 ± 1.00 | 85.00 ± 1.00 | 60.00 ± 0.00 | 52.00 ± 1.00 | 46.00 ± 1.00 |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| `dmd_nohetero` | features (768-d) | 3 | **0.7000 ± 0.0100** | 0.7600 ± 0.0100 | 84.00 ± 1.00 | "
                    "83.00 ± 1.00 | **87.00 ± 1.00** | **86.00 ± 1.00** |"),
            std::string::npos);
  EXPECT_NE(md.find("| `dmd_nohomo` | features (768-d) | 3 | 0.7300 ± 0.0100 | 0.7500 ± 0.0100 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| `mystery` | features (768-d) | 1 | 0.8000 | 0.7000 |"), std::string::npos);
  const auto dmd = md.find("| `dmd` | features (768-d) | 3"), nohetero = md.find("| `dmd_nohetero` | features (768-d) | 3"),
             nohomo = md.find("| `dmd_nohomo` | features (768-d) | 3"), mystery = md.find("| `mystery` | features (768-d) | 1");
  EXPECT_LT(dmd, nohetero);
  EXPECT_LT(nohetero, nohomo);
  EXPECT_LT(nohomo, mystery);
}

TEST_F(ReportTest, DifferencesWithWelchPValues) {
  const auto md = report();
  EXPECT_NE(md.find("two-sided Welch t-test"), std::string::npos);
  // dmd_nohomo vs dmd: MAE +0.03, t = 3.674, df = 4, p = 0.0213; Acc-2 non0 -2 points, p = 0.0705. Beside each p,
  // the minimal detectable difference: pooled sd 0.01 (1 point) with 3 + 3 seeds, 3.070891 sd
  // (scripts/power_reference.py): 0.0307 and 3.07 points; every |Δ| here is below it.
  EXPECT_NE(md.find("| `dmd_nohomo` | +0.0300 (p=0.021*, MDD 0.0307, underpowered) | "
                    "-0.0200 (p=0.070, MDD 0.0307, underpowered) |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| -2.00 (p=0.070, MDD 3.07, underpowered) | -2.00 (p=0.070, MDD 3.07, underpowered) | "
                    "+0.00 (p=1.000, no variance, MDD 0.00) | +0.00 (p=1.000, MDD 3.07, underpowered) |"),
            std::string::npos);
  EXPECT_NE(md.find("| `dmd_nohetero` | +0.0000 (p=1.000, MDD 0.0307, underpowered) | "
                    "-0.0100 (p=0.288, MDD 0.0307, underpowered) |"),
            std::string::npos);
  EXPECT_NE(md.find("| `mystery` | +0.1000 (n too small to test) |"), std::string::npos);
  // Every variant's runs are judged VALID (no cap recorded, no spread metrics, one protocol).
  EXPECT_NE(md.find("+0.00 (n too small to test) | VALID |"), std::string::npos);
}

TEST_F(ReportTest, LegendPublishedThroughputRunsBenchAndFooter) {
  const auto md = report();
  EXPECT_NE(md.find("| `dmd` | Full DMD: decoupling, HomoGD, cross-modal attention, HeteroGD |"), std::string::npos);
  EXPECT_NE(md.find("| `dmd_nohomo` | Without the homogeneous graph distillation |"), std::string::npos);
  EXPECT_NE(md.find("| `mystery` | (not in the variant registry) |"), std::string::npos);
  EXPECT_EQ(md.find("MulT baseline (not run here)"), std::string::npos) << "legend lists only variants present";

  EXPECT_NE(md.find("No published reference applies to synthetic data."), std::string::npos);
  EXPECT_NE(md.find("## mosi:/data/MOSI/aligned_50.pkl · aligned · profile smoke"), std::string::npos);
  EXPECT_NE(md.find("| `dmd-cvpr2023` | dmd | aligned | bert | yes | 45.60 | 86.00 | 86.00 | — | — |"), std::string::npos);
  EXPECT_NE(md.find("| `dlf-aaai2025` | dmd | aligned | bert | yes | 46.06 | 83.23 | 83.29 | 0.7520 | — |"),
            std::string::npos);
  EXPECT_EQ(md.find("| unaligned |"), std::string::npos) << "only the matching setting";
  EXPECT_NE(md.find("The paper's Acc-2 convention is unstated"), std::string::npos);
  EXPECT_NE(md.find("Our full DMD's text protocol: bert-finetune."), std::string::npos);
  EXPECT_NE(md.find("- `dmd-cvpr2023`: Li, Wang, Cui. Decoupled Multimodal Distilling"), std::string::npos);
  EXPECT_EQ(md.find("No completed full DMD"), std::string::npos);

  // Throughput: train rate is the mean of 501, 502, 503.
  EXPECT_NE(md.find("| `dmd` | cpu | 2 | eval 16, train 16 | 502.0 | 2000.0 | 30.00 / 40.00 | 7.00 / 9.00 | 64.0 | "
                    "654321 |"),
            std::string::npos)
      << md;

  EXPECT_NE(md.find("| `dmd_nohomo` | 1114 | FAILED |"), std::string::npos);
  EXPECT_NE(md.find("- `dmd_nohomo` seed 1114 (run `failed-run-0`), FAILED: loss became NaN at epoch 3"),
            std::string::npos);
  EXPECT_NE(md.find("| `dmd` | 1112 | COMPLETED | 2 | 32.0 | 0.7000 | 0.7700 | 86.00 | 85.00 | 46.00 |"),
            std::string::npos);

  EXPECT_NE(md.find("Latest set `bench-1`"), std::string::npos);
  EXPECT_NE(md.find("| `BM_DmdForward/16` | 2.500 | 3.000 | 6400.0 | 10 | 48.0 | — | — |"),
            std::string::npos);
  EXPECT_NE(
      md.find(
          "| `train_step/dmd/mosi/batch:16/threads:1` | 400.000 | 400.000 | 40.0 | 3 | 96.0 | 40.0 (25%) | "
          "80.0 (50%) |"),
      std::string::npos);

  EXPECT_NE(md.find("- commit: 0123abcd4567 (12 runs), (not recorded) (1 run)"), std::string::npos) << md;
  EXPECT_NE(md.find("- LibTorch: 1.13.1 (12 runs), (not recorded) (1 run)"), std::string::npos);
  EXPECT_NE(md.find("- device: cpu (12 runs), (not recorded) (1 run)\n"), std::string::npos);
  EXPECT_NE(md.find("- threads: 2 (12 runs), 1 (1 run)\n"), std::string::npos);
  EXPECT_NE(md.find("- deterministic: yes\n"), std::string::npos);
  EXPECT_NE(md.find("- determinism flags: cpu (12 runs), (not recorded) (1 run)\n"), std::string::npos);
  EXPECT_NE(md.find("- regenerate: `dmdbench report --db r.sqlite --out out/latest.md`"), std::string::npos);
  EXPECT_NE(md.find("- generated: 20"), std::string::npos);
}

TEST_F(ReportTest, FiguresAreSvgFilesLinkedFromTheReport) {
  const auto md = report();
  const auto figs = dir_ / "out" / "latest-figures";
  for (const char* name : {"g1-edges-homo.svg", "g1-edges-hetero.svg", "g1-valid-loss.svg", "g1-mae-acc2.svg",
                           "g2-valid-loss.svg", "g2-mae-acc2.svg"}) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(fs::exists(figs / name));
    EXPECT_NE(slurp(figs / name).find("<svg"), std::string::npos);
    EXPECT_NE(md.find(std::string("](latest-figures/") + name + ")"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(figs / "g2-edges-homo.svg"));  // no edges recorded on the real-data runs
  EXPECT_NE(md.find("No data for: Learned HomoGD edge weights"), std::string::npos);
  // The heatmap data: dmd's homo l -> v weight, mean over seeds, as "to from weight".
  const auto edges = slurp(figs / "g1-edges-homo.dat");
  EXPECT_NE(edges.find("# dmd: to from mean_weight (mean over 3 seeds)\n"), std::string::npos);
  EXPECT_NE(edges.find("1 0 0.156667\n"), std::string::npos) << edges;  // 1/6 + 0.01 * ('l' - 'v') / 10
  const auto bars = slurp(figs / "g1-mae-acc2.dat");
  EXPECT_NE(bars.find("2 0.730000 0.010000 84.000000 1.000000 \"dmd_nohomo\""), std::string::npos) << bars;
  EXPECT_TRUE(fs::exists(figs / "g1.gp"));
  for (const auto& entry : fs::directory_iterator(dir_ / "out"))
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos);
}

TEST_F(ReportTest, MissingGnuplotIsSaidNotFatal) {
  options_.gnuplot = (dir_ / "no-such-gnuplot").string();
  const auto md = report();
  EXPECT_NE(md.find("Figures were not drawn: " + options_.gnuplot + " was not found"), std::string::npos);
  EXPECT_EQ(md.find("](latest-figures/"), std::string::npos);
  EXPECT_NE(md.find("| `dmd` | features (768-d) | 3 | **0.7000 ± 0.0100**"), std::string::npos);
}

TEST_F(ReportTest, ExperimentSelection) {
  options_.experiment = "exp-old";
  const auto md = report();
  EXPECT_NE(md.find("| `dmd` | features (768-d) | 1 | 0.9900 |"), std::string::npos);
  EXPECT_NE(md.find("Only full DMD (`dmd`) has completed runs in this group."), std::string::npos);
  options_.experiment = "nope";
  try {
    reports::write_report(*store_, options_);
    ADD_FAILURE() << "an unknown experiment must be refused";
  } catch (const reports::ReportError& e) {
    EXPECT_EQ(std::string(e.what()), "database " + store_->path() + " has no experiment nope");
  }
  results::Store empty((dir_ / "empty.sqlite").string());
  options_.experiment = "latest";
  try {
    reports::write_report(empty, options_);
    ADD_FAILURE() << "an empty database must be refused";
  } catch (const reports::ReportError& e) {
    EXPECT_EQ(std::string(e.what()), "database " + empty.path() + " holds no runs");
  }
}

TEST(ReportPublishedTest, EmbeddedJsonMatchesTheFiles) {
  const auto embedded = nlohmann::json::parse(reports::kPublishedResultsJson);
  const auto in_repo = nlohmann::json::parse(slurp(fs::path(DMDBENCH_SOURCE_DIR) / "reports/published-results.json"));
  EXPECT_EQ(embedded, in_repo) << "reports/published_data.h is out of date: paste reports/published-results.json";
  const fs::path shared = fs::path(DMDBENCH_SHARED_DIR) / "reference/published-results.json";
  ASSERT_TRUE(fs::exists(shared)) << shared;
  EXPECT_EQ(in_repo, nlohmann::json::parse(slurp(shared)));
}

TEST(ReportPublishedTest, ParsedRowsAndFamilies) {
  const auto& p = reports::published();
  ASSERT_EQ(p.rows.size(), 19u);
  EXPECT_EQ(p.rows[0].source, "dmd-cvpr2023");
  EXPECT_EQ(p.rows[0].text, "bert");
  EXPECT_DOUBLE_EQ(*p.rows[0].acc7, 45.6);
  EXPECT_FALSE(p.rows[0].mae.has_value());
  EXPECT_DOUBLE_EQ(*p.rows[14].corr, 0.698);
  ASSERT_EQ(p.ablation.size(), 6u);
  EXPECT_DOUBLE_EQ(p.ablation[5].mosei_f1, 81.9);
  EXPECT_FALSE(p.ablation[5].fd);
  EXPECT_EQ(p.sources.size(), 4u);
  EXPECT_EQ(reports::real_data_family("mosi:/x/aligned_50.pkl"), "mosi");
  EXPECT_EQ(reports::real_data_family("mosei:/x"), "mosei");
  EXPECT_EQ(reports::real_data_family("synthetic-mosi"), "");
  EXPECT_EQ(reports::real_data_family("/data/mosi.pkl"), "mosi");  // as the plan reads a bare path
  EXPECT_EQ(reports::real_data_family("/data/aligned_50.pkl"), "");
}

// Runs of one variant with different configurations (an execution option, an override) are different rows, named
// by what differs; a seed rerun with the same configuration replaces the older one.
TEST(ReportRows, RunsOfOneVariantWithDifferentConfigurationsAreSeparateRows) {
  std::string tmpl = (fs::temp_directory_path() / "dmd_rows_XXXXXX").string();
  const fs::path dir = mkdtemp(tmpl.data());
  {
    results::Store store((dir / "r.sqlite").string());
    store.add_experiment({"e", "2025-02-01T00:00:00.000Z", "cmd", ""});
    int n = 0;
    auto add = [&](const std::string& config, int64_t seed, double mae, std::vector<results::MetricRow> extra) {
      results::RunSpec spec{"run" + std::to_string(n), "e", "dmd", "synthetic-mosi", "smoke", seed, n, config};
      ++n;
      store.start_run(spec, {});
      extra.push_back({"test", "mae", mae, -1});
      store.complete_run(spec.run_id, 1, 1.0, extra, {}, {});
    };
    add(R"({"lr":0.0001,"autocast":"off"})", 1, 0.70, {});
    add(R"({"lr":0.0001,"autocast":"off"})", 2, 0.72, {});
    add(R"({"lr":0.0001,"autocast":"bf16"})", 1, 0.80, {{"train", "graph_max_grad_diff", 2.5e-7, -1}});
    add(R"({"lr":0.0001,"autocast":"bf16"})", 1, 0.90, {});  // the same seed again: replaces the 0.80 run
    reports::ReportOptions o;
    o.db_path = store.path(), o.out_path = (dir / "out.md").string(), o.variants = {{"dmd", "full DMD"}};
    reports::write_report(store, o);
  }
  const std::string md = slurp(dir / "out.md");
  EXPECT_NE(md.find("| `dmd [autocast=off]` | (not recorded) | 2 | **0.7100 ± 0.0141** |"), std::string::npos) << md;
  EXPECT_NE(md.find("| `dmd [autocast=bf16]` | (not recorded) | 1 | 0.9000 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| `dmd` | full DMD |"), std::string::npos) << "the legend names the variant once";
  EXPECT_EQ(md.find("not in the variant registry"), std::string::npos);
  EXPECT_NE(md.find("superseded by a later run"), std::string::npos);
  EXPECT_NE(md.find("graph vs eager max \\|grad diff\\| 2.5e-07"), std::string::npos) << "the runs table's checks";
  fs::remove_all(dir);
}
