// The sweep's life cycle as a hostile user meets it: the parent killed and the sweep rerun at once, sweeps racing
// on one database, a lock held during a run, options out of range, and read-only commands. Runs are tiny (2% of
// synthetic MOSI, 2 epochs) so each costs about a second; DMDBENCH_STRESS_REPS raises the repetition counts
// (the note of the issue gives the 50-repetition figures).
#include <gtest/gtest.h>

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "results/metrics.h"
#include "results/store.h"
#include "tests/cli_support.h"

namespace fs = std::filesystem;
using dmdbench::results::RunStatus;
using dmdbench::results::Store;

namespace {

using Result = dmdbench::testing::CommandResult;
Result run(const std::string& args) { return dmdbench::testing::run_dmdbench(args); }

int reps(int ci) {
  const char* env = std::getenv("DMDBENCH_STRESS_REPS");
  return env ? std::max(1, std::atoi(env)) : ci;
}

// Two tiny runs (full DMD and MulT, one seed).
std::string tiny(const fs::path& db) {
  return "run-ablation --variants dmd,mult --seeds 1111 --profile smoke --dataset synthetic-mosi@0.02 "
         "--set max_epochs=2 --no-report --jobs 2 --db " + db.string();
}

// Starts dmdbench in the background; its output goes to `log`.
pid_t start(const std::string& args, const fs::path& log, const std::string& env = "") {
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    const std::string cmd = env + " exec " + std::string(DMDBENCH_BINARY) + " " + args + " > " + log.string() + " 2>&1";
    execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
    _exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Every run of the database: COMPLETED, claimed `attempts` times at most, its epoch rows 1..n without gaps, every
// computed metric stored once for the test split.
void expect_consistent(const fs::path& db, std::size_t runs, int max_attempts) {
  Store s(db.string(), true);
  const auto rows = s.runs();
  ASSERT_EQ(rows.size(), runs);
  int computed = 0;
  for (const auto& m : dmdbench::results::metric_defs()) computed += m.compute != nullptr;
  for (const auto& r : rows) {
    SCOPED_TRACE(r.spec.variant);
    EXPECT_EQ(r.status, RunStatus::Completed) << r.error;
    EXPECT_GE(r.attempts, 1);
    EXPECT_LE(r.attempts, max_attempts);
    const auto epochs = s.epochs(r.spec.run_id);
    for (std::size_t e = 0; e < epochs.size(); ++e) EXPECT_EQ(epochs[e].epoch, static_cast<int>(e) + 1);
    EXPECT_EQ(static_cast<int>(epochs.size()), 2);
    int test = 0;
    std::set<std::string> names;
    for (const auto& m : s.metrics(r.spec.run_id))
      if (m.split == "test") ++test, names.insert(m.name);
    EXPECT_EQ(test, computed);
    EXPECT_EQ(static_cast<int>(names.size()), computed) << "a metric stored twice";
  }
}

}  // namespace

TEST(SweepLife, KilledParentThenRerunAtOnceCompletesEverything) {
  // kill -9 of the parent at a random point, then the same command at once: the workers die with their parent,
  // the new sweep takes their runs over (their owner is gone), and it exits 0 with every run COMPLETED once.
  std::mt19937 rng(7);
  const int n = reps(3);
  for (int i = 0; i < n; ++i) {
    SCOPED_TRACE(i);
    const fs::path dir = dmdbench::testing::fresh_dir("life", "kill" + std::to_string(i));
    const pid_t pid = start(tiny(dir / "r.sqlite"), dir / "first.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(300, 2500)(rng)));
    kill(pid, SIGKILL);
    wait_exit(pid);
    const Result again = run(tiny(dir / "r.sqlite"));
    EXPECT_EQ(again.code, 0) << again.out;
    expect_consistent(dir / "r.sqlite", 2, 2);
    // No orphan: nothing of the first sweep is still training.
    EXPECT_EQ(run(tiny(dir / "r.sqlite")).out.find("0 to run") != std::string::npos, true);
    fs::remove_all(dir);
  }
}

TEST(SweepLife, ConcurrentSweepsTrainEachRunOnce) {
  // Two, then four identical sweeps on one database started at random offsets: every run is claimed by exactly one
  // of them (attempts == 1), the others wait for it, and all of them exit 0.
  std::mt19937 rng(11);
  for (int sweeps : {2, 4}) {
    const int n = reps(2);
    for (int i = 0; i < n; ++i) {
      SCOPED_TRACE(std::to_string(sweeps) + " sweeps, repetition " + std::to_string(i));
      const fs::path dir =
          dmdbench::testing::fresh_dir("life", "race" + std::to_string(sweeps) + "_" + std::to_string(i));
      std::vector<pid_t> pids;
      for (int k = 0; k < sweeps; ++k) {
        pids.push_back(start(tiny(dir / "r.sqlite"), dir / ("s" + std::to_string(k) + ".log")));
        std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 400)(rng)));
      }
      for (pid_t p : pids) EXPECT_EQ(wait_exit(p), 0);
      expect_consistent(dir / "r.sqlite", 2, 1);
      fs::remove_all(dir);
    }
  }
}

TEST(SweepLife, LockHeldDuringARunFailsItWithTheReason) {
  // Another process holds the write lock past the busy timeout (2 s here): the worker's store calls fail, the run is
  // FAILED with that sentence (not "killed by signal 6"), and the sweep exits non-zero naming it.
  const fs::path dir = dmdbench::testing::fresh_dir("life", "lock");
  const fs::path db = dir / "r.sqlite";
  const std::string args = "run-ablation --variants dmd --seeds 1111 --profile smoke --dataset synthetic-mosi@0.05 "
                           "--set max_epochs=3 --no-report --jobs 1 --db " + db.string();
  const pid_t pid = start(args, dir / "sweep.log", "DMDBENCH_BUSY_TIMEOUT_S=2");
  // Wait for the run to be RUNNING, then hold an exclusive lock for 8 s.
  for (int t = 0; t < 300; ++t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!fs::exists(db)) continue;
    sqlite3* h = nullptr;
    sqlite3_open(db.c_str(), &h);
    sqlite3_busy_timeout(h, 1000);
    sqlite3_stmt* st = nullptr;
    int running = 0;
    if (sqlite3_prepare_v2(h, "SELECT count(*) FROM run WHERE status = 'RUNNING'", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      running = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (running > 0 && sqlite3_exec(h, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK) {
      std::this_thread::sleep_for(std::chrono::seconds(8));
      sqlite3_exec(h, "COMMIT", nullptr, nullptr, nullptr);
      sqlite3_close(h);
      break;
    }
    sqlite3_close(h);
  }
  EXPECT_EQ(wait_exit(pid), 1);
  Store s(db.string(), true);
  const auto rows = s.runs();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].status, RunStatus::Failed);
  EXPECT_NE(rows[0].error.find("was locked for more than 2 s by another process"), std::string::npos)
      << rows[0].error;
  fs::remove_all(dir);
}

TEST(SweepLife, OptionsOutOfRangeAreRefusedBeforeAnyDatabaseExists) {
  const fs::path dir = dmdbench::testing::fresh_dir("life", "options");
  const std::string db = (dir / "never.sqlite").string();
  const struct {
    std::string args, expect;
  } cases[] = {
      {"train --seed -5 --profile smoke", "--seed is -5"},
      {"train --threads 0 --profile smoke", "--threads is 0"},
      {"train --threads -3 --profile smoke", "--threads is -3"},
      {"run-ablation --jobs -1 --db " + db, "--jobs is -1"},
      {"run-ablation --set max_epochs=-1 --db " + db, "'max_epochs' is -1"},
      {"run-ablation --set learning_rate=-1 --db " + db, "'learning_rate' is -1.0"},
      {"run-ablation --set batch_size=0 --db " + db, "'batch_size' is 0"},
      {"run-ablation --set heads=7 --db " + db, "'heads' is 7, which does not divide d = 50"},
      {"run-ablation --set attn_dropout=1.5 --db " + db, "'attn_dropout' is 1.5"},
      {"run-ablation --dataset mosi:" + (dir / "missing.pkl").string() + " --db " + db, "cannot be read"},
      {"run-ablation --dataset mosi:" + dir.string() + " --db " + db, "is not a regular file"},
      {"bench --repetitions 0 --db " + db, "--repetitions is 0"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.args);
    const Result r = run(c.args);
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.out.find(c.expect), std::string::npos) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  }
  EXPECT_FALSE(fs::exists(db));
  fs::remove_all(dir);
}

TEST(SweepLife, ShardWithoutRunsDoesNothingAndSaysSo) {
  const fs::path dir = dmdbench::testing::fresh_dir("life", "shard");
  const Result r = run("run-ablation --variants dmd --seeds 1111 --shard 1/2 --db " + (dir / "r.sqlite").string());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("shard 1/2 holds none of the plan's 1 run(s); nothing to do"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

TEST(SweepLife, ReadOnlyCommandsTakeThePositionalPathAndLeaveTheFilesAlone) {
  const fs::path dir = dmdbench::testing::fresh_dir("life", "readonly");
  const fs::path db = dir / "r.sqlite";
  { Store s(db.string()); }  // created, closed: no -wal or -shm remains
  ASSERT_FALSE(fs::exists(db.string() + "-wal"));
  const auto before = fs::last_write_time(db);
  const Result ls = run("ls " + db.string());
  EXPECT_EQ(ls.code, 0) << ls.out;
  EXPECT_NE(ls.out.find("(no runs)"), std::string::npos) << "ls read the named database";
  const Result rep = run("regress --db " + db.string() + " --baseline " + (dir / "none.json").string());
  EXPECT_NE(rep.code, 0);
  for (const char* suffix : {"-wal", "-shm"}) EXPECT_FALSE(fs::exists(db.string() + suffix)) << suffix;
  EXPECT_EQ(fs::last_write_time(db), before);
  // On a read-only directory too.
  fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec);
  if (access(dir.c_str(), W_OK) != 0) {  // root ignores permissions; then this part says nothing
    const Result ro = run("ls " + db.string());
    EXPECT_EQ(ro.code, 0) << ro.out;
  }
  fs::permissions(dir, fs::perms::owner_all);
  fs::remove_all(dir);
}
