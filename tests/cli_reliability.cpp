// The dmdbench command as a user runs it: bad input gives one clear line and a non-zero exit, a killed worker is
// redone on resume without duplicates, completed runs are not redone, and the regression gate bites.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "models/cpu_features.h"
#include "results/metrics.h"
#include "results/store.h"
#include "tests/cli_support.h"

namespace fs = std::filesystem;

namespace {

using Result = dmdbench::testing::CommandResult;
Result run(const std::string& args) { return dmdbench::testing::run_dmdbench(args); }

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// Small, quick runs: the smoke profile (3 epochs) on a tenth of synthetic MOSI.
const std::string kSmall =
    "--profile smoke --set synthetic_scale=0.1 --no-report --jobs 1 --seeds 1111";

}  // namespace

TEST(Cli, HelpListsOnlyWorkingVerbs) {
  const Result r = run("--help");
  EXPECT_EQ(r.code, 0);
  for (const char* verb : {"run-ablation", "train", "evaluate", "report", "regress", "bench", "ls", "merge", "data"})
    EXPECT_NE(r.out.find(std::string("  ") + verb), std::string::npos) << verb;
  EXPECT_EQ(run("train --help").code, 0);
  EXPECT_EQ(run("frobnicate").code, 2);
}

TEST(Cli, BadInputGivesOneLineAndNonZeroExit) {
  const fs::path dir = dmdbench::testing::fresh_dir("cli", "bad");
  struct Case {
    std::string args, expect;
  } cases[] = {
      {"run-ablation --variants dmd,nope --db " + (dir / "a.sqlite").string(), "unknown variant 'nope'"},
      {"run-ablation --shard 3/2 --db " + (dir / "a.sqlite").string(), "bad shard '3/2'"},
      {"run-ablation --seeds 1,x --db " + (dir / "a.sqlite").string(), "bad seed 'x'"},
      {"run-ablation --dataset synthetic-iemocap --db " + (dir / "a.sqlite").string(), "unknown synthetic dataset"},
      {"train --device cuda:0 --profile smoke", "cuda"},
      {"train --profile smoke --set no_such_key=1", "unknown configuration key 'no_such_key'"},
      {"data info " + (dir / "missing.pkl").string(), "missing.pkl"},
      {"data inspect-checkpoint " + (dir / "missing.pth").string(), "missing.pth"},
  };
  for (const auto& c : cases) {
    const Result r = run(c.args);
    EXPECT_NE(r.code, 0) << c.args;
    EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.args << "\n" << r.out;
    EXPECT_EQ(lines(r.out), 1) << c.args << "\n" << r.out;
  }
  EXPECT_FALSE(fs::exists(dir / "a.sqlite")) << "a refused plan must not create the database";
  fs::remove_all(dir);
}

TEST(Cli, CorruptOrNewerDatabaseIsRefusedAndLeftUntouched) {
  const fs::path dir = dmdbench::testing::fresh_dir("cli", "corrupt");
  const fs::path bad = dir / "corrupt.sqlite";
  std::ofstream(bad) << "this is not a database, just some bytes that look nothing like SQLite's header\n";
  const std::string before = read_bytes(bad);
  Result r = run("run-ablation --variants dmd " + kSmall + " --db " + bad.string());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find(bad.string()), std::string::npos) << r.out;
  EXPECT_EQ(read_bytes(bad), before);

  const fs::path newer = dir / "newer.sqlite";
  { dmdbench::results::Store s(newer.string()); }
  sqlite3* db = nullptr;
  sqlite3_open(newer.string().c_str(), &db);
  sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  const std::string newer_before = read_bytes(newer);
  r = run("ls --db " + newer.string());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("newer"), std::string::npos) << r.out;
  EXPECT_EQ(lines(r.out), 1) << r.out;
  EXPECT_EQ(read_bytes(newer), newer_before);
  fs::remove_all(dir);
}

TEST(Cli, KilledWorkerIsRedoneCompletedRunsAreNot) {
  const fs::path dir = dmdbench::testing::fresh_dir("cli", "kill");
  const std::string db = (dir / "kill.sqlite").string();
  const std::string args = "run-ablation --variants dmd,no-distill " + kSmall + " --db " + db;

  // Start the sweep, wait until the first worker has committed an epoch, then kill -9 that worker.
  const pid_t parent = fork();
  if (parent == 0) {
    const std::string cmd = std::string(DMDBENCH_BINARY) + " " + args + " > " + (dir / "first.log").string() + " 2>&1";
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  pid_t worker = -1;
  for (int i = 0; i < 1200 && worker < 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!fs::exists(db)) continue;
    try {
      dmdbench::results::Store s(db, true);
      const auto runs = s.runs();
      if (runs.empty() || runs.front().status != dmdbench::results::RunStatus::Running) continue;
      if (s.epochs(runs.front().spec.run_id).empty()) continue;
    } catch (const std::exception&) {
      continue;
    }
    std::ifstream children("/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) + "/children");
    children >> worker;
    if (!children) worker = -1;
  }
  ASSERT_GT(worker, 0) << "no worker appeared";
  ASSERT_EQ(kill(worker, SIGKILL), 0);
  int status = 0;
  waitpid(parent, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 1) << read_bytes(dir / "first.log");
  EXPECT_NE(read_bytes(dir / "first.log").find("signal 9"), std::string::npos);

  std::string killed_id, completed_finished;
  {
    dmdbench::results::Store s(db, true);
    const auto runs = s.runs();
    ASSERT_EQ(runs.size(), 2u);
    for (const auto& r : runs) {
      if (r.spec.variant == "dmd") {
        EXPECT_EQ(r.status, dmdbench::results::RunStatus::Failed);
        killed_id = r.spec.run_id;
      } else {
        EXPECT_EQ(r.status, dmdbench::results::RunStatus::Completed);
        completed_finished = r.finished_at;
      }
    }
  }

  // Resume: only the killed run is redone; no duplicate rows.
  const Result again = run(args);
  EXPECT_EQ(again.code, 0) << again.out;
  EXPECT_NE(again.out.find("1 already completed, 1 to run"), std::string::npos) << again.out;
  {
    dmdbench::results::Store s(db, true);
    const auto runs = s.runs();
    ASSERT_EQ(runs.size(), 2u);
    for (const auto& r : runs) {
      EXPECT_EQ(r.status, dmdbench::results::RunStatus::Completed) << r.spec.variant;
      if (r.spec.variant == "no-distill") {
        EXPECT_EQ(r.finished_at, completed_finished);
      }
    }
    const auto epochs = s.epochs(killed_id);
    ASSERT_EQ(epochs.size(), 3u);
    for (int e = 0; e < 3; ++e) EXPECT_EQ(epochs[e].epoch, e + 1);
    int test_metrics = 0;
    for (const auto& m : s.metrics(killed_id)) test_metrics += m.split == "test";
    int computed = 0;  // every metric computed from predictions, stored once for the test split
    for (const auto& m : dmdbench::results::metric_defs()) computed += m.compute != nullptr;
    EXPECT_EQ(test_metrics, computed);
  }
  // A third run does nothing.
  const Result third = run(args);
  EXPECT_EQ(third.code, 0);
  EXPECT_NE(third.out.find("2 already completed, 0 to run"), std::string::npos) << third.out;
  fs::remove_all(dir);
}

// Every stored number names the BLAS kernels that made it (the determinism flags). Where OpenBLAS does not
// know the CPU it falls back to its Prescott kernels (SSE3, no FMA); on a CPU with AVX2 and FMA dmdbench asks
// for the kernels OpenBLAS gives its known siblings instead (models/blas_core.h). A kernel set given in
// OPENBLAS_CORETYPE is kept, and named as chosen by it.
TEST(Cli, StoredNumbersNameTheBlasKernels) {
  const fs::path dir = dmdbench::testing::fresh_dir("cli", "blas_core");
  const char* was = std::getenv("OPENBLAS_CORETYPE");
  const std::string saved = was != nullptr ? was : "";
  auto flags = [&](const std::string& name) {
    const std::string db = (dir / (name + ".sqlite")).string();
    const Result r = run("bench --filter '^data_pipeline/mosi/batch:1$' --repetitions 1 --db " + db);
    EXPECT_EQ(r.code, 0) << r.out;
    sqlite3* h = nullptr;
    sqlite3_open(db.c_str(), &h);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(h, "SELECT determinism_flags FROM bench", -1, &st, nullptr);
    std::string f =
        sqlite3_step(st) == SQLITE_ROW ? reinterpret_cast<const char*>(sqlite3_column_text(st, 0)) : "";
    sqlite3_finalize(st);
    sqlite3_close(h);
    return f;
  };
  unsetenv("OPENBLAS_CORETYPE");
  const std::string own = flags("own");
  EXPECT_EQ(own.rfind("cpu:openblas=", 0), 0u) << own;
  if (dmdbench::models::cpu::has_avx2_fma()) {
    EXPECT_EQ(own.find("Prescott"), std::string::npos) << own;
  }
  if (dmdbench::models::cpu::has_avx512()) {
    EXPECT_TRUE(own.rfind("cpu:openblas=SkylakeX", 0) == 0 || own.rfind("cpu:openblas=Cooperlake", 0) == 0 ||
                own.rfind("cpu:openblas=SapphireRapids", 0) == 0)
        << own;
  }
  setenv("OPENBLAS_CORETYPE", "Haswell", 1);
  EXPECT_EQ(flags("given"), "cpu:openblas=Haswell(OPENBLAS_CORETYPE)");
  if (was != nullptr)
    setenv("OPENBLAS_CORETYPE", saved.c_str(), 1);
  else
    unsetenv("OPENBLAS_CORETYPE");
  fs::remove_all(dir);
}
