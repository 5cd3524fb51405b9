// Robustness through the CLI: a sweep killed (-9) during its robustness phase and rerun stores every (run,
// perturbation, level, metric) exactly once; `dmdbench robustness` evaluates runs whose weights were kept, refuses
// in one sentence the runs whose weights were not kept or changed, and evaluates nothing twice.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "results/metrics.h"
#include "results/robustness.h"
#include "results/store.h"
#include "tests/cli_support.h"

namespace fs = std::filesystem;
using dmdbench::results::RunStatus;
using dmdbench::results::Store;

namespace {

int computed_metrics() {
  int n = 0;
  for (const auto& m : dmdbench::results::metric_defs()) n += m.compute != nullptr;
  return n;
}

// Every grid point of every run present, each (perturbation, level, metric) once.
void expect_grid_once(const fs::path& db, const std::string& grid) {
  Store s(db.string(), true);
  const auto expected = dmdbench::results::robustness_grid(grid);
  for (const auto& r : s.runs()) {
    SCOPED_TRACE(r.spec.variant);
    EXPECT_EQ(r.status, RunStatus::Completed) << r.error;
    const auto rows = s.robustness(r.spec.run_id);
    std::set<std::tuple<std::string, double, std::string>> keys;
    for (const auto& row : rows) keys.insert({row.perturbation, row.level, row.metric});
    EXPECT_EQ(keys.size(), rows.size());
    EXPECT_EQ(rows.size(), expected.size() * static_cast<std::size_t>(computed_metrics()));
    for (const auto& p : expected) EXPECT_EQ(keys.count({p.family(), p.level, "mae"}), 1u) << p.name();
  }
}

}  // namespace

TEST(CliRobustness, KilledDuringTheRobustnessPhaseThenRerunStoresEveryPointOnce) {
  const fs::path dir = dmdbench::testing::fresh_dir("robust", "kill");
  const std::string args = "run-ablation --variants dmd --seeds 1111 --profile smoke --dataset synthetic-mosi@0.05 "
                           "--set max_epochs=1 --no-report --jobs 1 --robustness full --db " +
                           (dir / "r.sqlite").string();
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    const std::string cmd = "exec " + std::string(DMDBENCH_BINARY) + " " + args + " > " + (dir / "first.log").string() +
                            " 2>&1";
    execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
    _exit(127);
  }
  // Wait for the first robustness progress line, then kill the sweep and its worker at once.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (dmdbench::testing::read_text(dir / "first.log").find("robustness 1/") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(-pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  {
    Store s((dir / "r.sqlite").string(), true);
    const auto runs = s.runs();
    ASSERT_EQ(runs.size(), 1u) << dmdbench::testing::read_text(dir / "first.log");
    ASSERT_EQ(runs[0].status, RunStatus::Running) << "the kill came after the robustness phase";
  }
  const auto again = dmdbench::testing::run_dmdbench(args);
  EXPECT_EQ(again.code, 0) << again.out;
  expect_grid_once(dir / "r.sqlite", "full");
  fs::remove_all(dir);
}

TEST(CliRobustness, RobustnessVerbUsesKeptWeightsOnlyAndEvaluatesNothingTwice) {
  const fs::path dir = dmdbench::testing::fresh_dir("robust", "verb");
  const std::string db = (dir / "r.sqlite").string();
  const std::string sweep = "run-ablation --variants dmd --seeds 1111 --profile smoke --dataset synthetic-mosi@0.02 "
                            "--set max_epochs=1 --no-report --jobs 1 --db ";
  // Without --keep-checkpoints: one sentence, non-zero, nothing stored.
  const fs::path plain = dir / "plain.sqlite";
  ASSERT_EQ(dmdbench::testing::run_dmdbench(sweep + plain.string()).code, 0);
  auto r = dmdbench::testing::run_dmdbench("robustness --db " + plain.string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("its best weights were not kept (run-ablation --keep-checkpoints keeps them)"),
            std::string::npos)
      << r.out;
  // With them: the default grid from the kept weights, then nothing left to do.
  ASSERT_EQ(dmdbench::testing::run_dmdbench(sweep + db + " --keep-checkpoints").code, 0);
  {
    Store s(db, true);
    EXPECT_TRUE(s.robustness(s.runs()[0].spec.run_id).empty());  // smoke: robustness off by default
    ASSERT_TRUE(s.checkpoint(s.runs()[0].spec.run_id));
  }
  r = dmdbench::testing::run_dmdbench("robustness --db " + db);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("6 grid point(s) evaluated"), std::string::npos) << r.out;
  expect_grid_once(db, "default");
  r = dmdbench::testing::run_dmdbench("robustness --db " + db);
  EXPECT_NE(r.out.find("0 run(s) evaluated, 1 already complete"), std::string::npos) << r.out;
  // A changed weights file is refused by its SHA-256.
  Store s(db, true);
  const std::string ckpt = (dir / s.checkpoint(s.runs()[0].spec.run_id)->path).string();
  std::ofstream(ckpt, std::ios::app) << "x";
  r = dmdbench::testing::run_dmdbench("robustness --grid full --db " + db);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("not the file that was stored (SHA-256 differs)"), std::string::npos) << r.out;
  fs::remove_all(dir);
}
