// Robustness by name and by number: perturbation names and grids, relative and effective robustness against
// values computed by hand, the summary of a run's rows, and the store's robustness table (migration from version 2,
// no duplicates, ownership, merge).
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

#include "results/robustness.h"
#include "results/schema.h"
#include "results/store.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using namespace dmdbench::results;
using dmdbench::testing::TempDir;

namespace {

RunSpec spec(const std::string& id) {
  RunSpec s;
  s.run_id = id, s.experiment_id = "exp1", s.variant = "dmd", s.dataset = "synthetic-mosi", s.profile = "smoke";
  s.seed = 1111;
  return s;
}

}  // namespace

TEST(Robustness, NamesRoundTripAndBadNamesAreRefused) {
  EXPECT_EQ(parse_perturbation("drop:audio").name(), "drop:audio");
  EXPECT_EQ(parse_perturbation("missing:all@0.3").family(), "missing:all");
  EXPECT_DOUBLE_EQ(parse_perturbation("missing:all@0.3").level, 0.3);
  EXPECT_EQ(parse_perturbation("noise:text@0.5").name(), "noise:text@0.5");
  for (const char* bad : {"drop:all", "drop:smell", "missing:all@1.5", "missing:all@x", "noise:audio@-1", "blur:all@1",
                          "missing:all"})
    EXPECT_THROW(parse_perturbation(bad), std::invalid_argument) << bad;
}

TEST(Robustness, GridsHoldWhatTheIssueLists) {
  EXPECT_TRUE(robustness_grid("off").empty());
  std::vector<std::string> names;
  for (const auto& p : robustness_grid("default")) names.push_back(p.name());
  EXPECT_EQ(names, (std::vector<std::string>{"drop:text", "drop:audio", "drop:vision", "missing:all@0.3",
                                             "missing:all@0.6", "missing:all@0.9"}));
  const auto full = robustness_grid("full");
  EXPECT_EQ(full.size(), 3u + 4u * 9u + 4u * 10u);
  EXPECT_EQ(full[3].name(), "missing:text@0.1");
  EXPECT_EQ(full.back().name(), "noise:all@1");
  EXPECT_THROW(robustness_grid("huge"), std::invalid_argument);
}

TEST(Robustness, RelativeRobustnessIsTheTrapezoidAreaOverTheLargestLevel) {
  // By hand: (0.5 (0.8 + 0.6) / 2 + 0.5 (0.6 + 0.3) / 2) / 1 = 0.35 + 0.225 = 0.575.
  EXPECT_NEAR(*relative_robustness({{0, 0.8}, {0.5, 0.6}, {1.0, 0.3}}), 0.575, 1e-12);
  // Uneven levels: (0.3 (1.0 + 0.7) / 2 + 0.6 (0.7 + 0.1) / 2) / 0.9 = (0.255 + 0.24) / 0.9 = 0.55.
  EXPECT_NEAR(*relative_robustness({{0, 1.0}, {0.3, 0.7}, {0.9, 0.1}}), 0.55, 1e-12);
  EXPECT_FALSE(relative_robustness({{0, 1.0}}));
  EXPECT_FALSE(relative_robustness({{0.3, 1.0}, {0.6, 0.5}}));  // no clean point
}

TEST(Robustness, EffectiveRobustnessSubtractsTheShiftedReference) {
  // Reference (0, 0.9), (0.5, 0.8), (1, 0.5) shifted to the run's clean 0.8: (0.8, 0.7, 0.4). The run (0.8, 0.6, 0.3)
  // differs by (0, -0.1, -0.1): area 0.5 (0 - 0.1) / 2 + 0.5 (-0.1 - 0.1) / 2 = -0.025 - 0.05 = -0.075.
  const Curve run = {{0, 0.8}, {0.5, 0.6}, {1.0, 0.3}}, ref = {{0, 0.9}, {0.5, 0.8}, {1.0, 0.5}};
  EXPECT_NEAR(*effective_robustness(run, ref), -0.075, 1e-12);
  EXPECT_NEAR(*effective_robustness(run, run), 0.0, 1e-12);
  // A reference on a coarser grid is read by linear interpolation: (0, 0.9), (1, 0.5) gives 0.7 at 0.5, shifted
  // (0.8, 0.6, 0.4); the differences (0, 0, -0.1) have the area 0.5 (0 + 0) / 2 + 0.5 (0 - 0.1) / 2 = -0.025.
  EXPECT_NEAR(*effective_robustness(run, {{0, 0.9}, {1.0, 0.5}}), -0.025, 1e-12);
  EXPECT_FALSE(effective_robustness(run, {{0, 0.9}, {0.5, 0.8}}));  // does not reach rate 1
}

TEST(Robustness, SummaryOfARunsRows) {
  const std::vector<RobustnessRow> rows = {{"missing:all", 0.5, "acc2_non0", 0.6}, {"missing:all", 1.0, "acc2_non0", 0.3},
                                           {"drop:audio", 1, "acc2_non0", 0.75},  {"drop:text", 1, "mae", 1.4},
                                           {"drop:text", 1, "acc2_non0", 0.5}};
  const auto s = robustness_summary({{"acc2_non0", 0.8}, {"mae", 0.9}}, rows,
                                    {{"acc2_non0", {{0, 0.9}, {0.5, 0.8}, {1.0, 0.5}}}});
  EXPECT_NEAR(s.at("rr_acc2_non0"), 0.575, 1e-12);
  EXPECT_NEAR(s.at("er_acc2_non0"), -0.075, 1e-12);
  EXPECT_NEAR(s.at("drop_audio_acc2_non0"), -0.05, 1e-12);
  EXPECT_NEAR(s.at("drop_text_acc2_non0"), -0.3, 1e-12);
  EXPECT_NEAR(s.at("drop_text_mae"), 0.5, 1e-12);
  EXPECT_EQ(s.count("rr_mae"), 0u);  // no missing:all rows for MAE
  EXPECT_EQ(s.count("drop_vision_acc2_non0"), 0u);
}

TEST(RobustnessStore, VersionTwoDatabaseMigratesAndRowsAreStoredOnce) {
  TempDir dir("dmd_robust");
  const std::string path = dir.file("r.sqlite");
  {  // a database as version 2 left it
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    for (const auto& m : detail::migrations()) {
      if (m.version > 2) continue;
      for (const char* sql : m.statements) {
        ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK);
      }
    }
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 2", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  Store s(path);
  EXPECT_EQ(s.schema_version(), kSchemaVersion);
  s.queue_runs({spec("r1")});
  const std::vector<RobustnessRow> rows = {{"drop:audio", 1, "mae", 1.1}, {"missing:all", 0.3, "mae", 0.95}};
  EXPECT_THROW(s.add_robustness("r1", rows), StoreError);  // QUEUED: not stored
  ASSERT_TRUE(s.claim_run(spec("r1"), "me").claimed);
  EXPECT_THROW(s.add_robustness("r1", rows, "someone else"), OwnershipLost);
  s.add_robustness("r1", rows, "me");
  s.add_robustness("r1", {{"drop:audio", 1, "mae", 9.9}, {"missing:all", 0.6, "mae", 1.0}}, "me");
  const auto stored = s.robustness("r1");
  ASSERT_EQ(stored.size(), 3u);
  EXPECT_EQ(stored[0].perturbation, "drop:audio");
  EXPECT_DOUBLE_EQ(stored[0].value, 1.1);  // the first row stays
  s.set_checkpoint("r1", {"r-checkpoints/r1.pt", "ab12", 10, ""}, "me");
  ASSERT_TRUE(s.checkpoint("r1"));
  EXPECT_EQ(s.checkpoint("r1")->sha256, "ab12");
  // A rerun claim starts the run afresh: its robustness rows and checkpoint record go with the rest.
  s.fail_run("r1", "killed", "me", RunStatus::Interrupted);
  ASSERT_TRUE(s.claim_run(spec("r1"), "me2").claimed);
  EXPECT_TRUE(s.robustness("r1").empty());
  EXPECT_FALSE(s.checkpoint("r1"));
  // Merge copies the rows of runs new to the target.
  s.add_robustness("r1", rows, "me2");
  s.complete_run("r1", 1, 1.0, {}, {}, {}, "me2");
  s.add_robustness("r1", {{"noise:all", 0.5, "mae", 1.2}});  // COMPLETED: `dmdbench robustness` adds rows
  Store other(dir.file("o.sqlite"));
  other.merge_from(path);
  other.merge_from(path);
  EXPECT_EQ(other.robustness("r1").size(), 3u);
}
