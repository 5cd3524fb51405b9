// The SQLite store: round trips, run lifecycle, schema versions, refusals (corrupt, newer, read-only, disk
// full), concurrent writers (processes and threads) and idempotent merges.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>

#include "results/ls.h"
#include "results/store.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using namespace dmdbench::results;
using dmdbench::testing::TempDir;

namespace {

RunSpec spec(const std::string& id, const std::string& variant = "dmd", int64_t seed = 1111) {
  RunSpec s;
  s.run_id = id;
  s.experiment_id = "exp1";
  s.variant = variant;
  s.dataset = "synthetic-mosi";
  s.profile = "smoke";
  s.seed = seed;
  s.plan_index = 3;
  s.config_json = R"({"lr": 0.0001})";
  return s;
}

Provenance prov() {
  Provenance p;
  p.git_commit = "abc123def456";
  p.libtorch_version = "1.13.1";
  p.device = "cpu";
  p.host = "node7";
  p.threads = 4;
  p.deterministic = true;
  p.determinism_flags = "cpu";
  p.dataset_name = "synthetic-mosi";
  p.dataset_sha256 = std::string(64, 'f');
  return p;
}

std::vector<MetricRow> final_metrics(double mae) {
  return {{"test", "mae", mae, -1},        {"test", "corr", 0.75, -1},      {"test", "acc2_has0", 0.8, -1},
          {"test", "f1_has0", 0.79, -1},   {"test", "acc2_non0", 0.85, -1}, {"test", "f1_non0", 0.84, -1},
          {"test", "acc3", 0.6, -1},       {"test", "acc5", 0.5, -1},       {"test", "acc7", 0.45, -1}};
}

// A complete lifecycle: start, `epochs` epochs with two validation metrics each, complete.
void full_run(Store& store, const RunSpec& s, int epochs = 2, double mae = 0.7) {
  store.start_run(s, prov());
  for (int e = 1; e <= epochs; ++e)
    store.add_epoch(s.run_id, {e, 1.0 / e, 0.9 / e, 1e-4, 2.5, 0.3},
                    {{"valid", "mae", 0.8 / e, e}, {"valid", "loss", 0.9 / e, e}});
  store.complete_run(s.run_id, epochs, 12.5, final_metrics(mae),
                     {{"train", 32, 1000.0, 30.0, 35.0, 1 << 20, 123456, "cpu", 4},
                      {"eval", 32, 4000.0, 8.0, 9.0, 1 << 19, 123456, "cpu", 4}},
                     {{"homo", "l", "v", 0.2}, {"homo", "v", "a", 0.1}, {"hetero", "a", "l", 0.3}}, "",
                     {{"test", 18446744073709551557ull}, {"test_shuffle_1", 42}});
}

std::map<std::string, int64_t> counts(const Store& s) {
  std::map<std::string, int64_t> out;
  for (const auto& [table, n] : s.table_counts()) out[table] = n;
  return out;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const StoreError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(StoreTest, FreshDatabaseHasCurrentSchemaAndWal) {
  TempDir dir("dmd_store");
  Store store(dir.file("r.sqlite"));
  EXPECT_EQ(store.schema_version(), kSchemaVersion);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(store.native_handle(), "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  ASSERT_EQ(sqlite3_prepare_v2(store.native_handle(), "SELECT version FROM schema_version", -1, &st, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 1);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 2);
  sqlite3_finalize(st);
  const auto c = counts(store);
  EXPECT_EQ(c.size(), 10u);
  for (const auto& [table, n] : c) EXPECT_EQ(n, 0) << table;
}

TEST(StoreTest, RoundTripEveryTable) {
  TempDir dir("dmd_store");
  const auto path = dir.file("r.sqlite");
  {
    Store store(path);
    store.add_experiment({"exp1", "2025-01-02T03:04:05.000Z", "dmdbench run-ablation", "five seeds"});
    store.add_experiment({"exp1", "", "ignored", "ignored"});  // idempotent on id
    full_run(store, spec("run-a"));
    BenchRow b;
    b.bench_set = "set1";
    b.name = "BM_Forward/32";
    b.median_ns = 1.5e6;
    b.p95_ns = 1.9e6;
    b.samples_per_s = 21333.0;
    b.repetitions = 10;
    b.peak_memory_bytes = 4096;
    b.prov = prov();
    b.flops_per_sample = 6.88e8, b.product_flops_per_sample = 6.2e8, b.product_ms_per_sample = 6.9,
    b.mm_gflops = 147.2;
    store.add_bench({b});
  }
  Store store(path, /*read_only=*/true);
  const auto exps = store.experiments();
  ASSERT_EQ(exps.size(), 1u);
  EXPECT_EQ(exps[0].command, "dmdbench run-ablation");
  EXPECT_EQ(exps[0].description, "five seeds");
  EXPECT_EQ(store.latest_experiment()->id, "exp1");

  const auto run = store.find_run("run-a");
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->status, RunStatus::Completed);
  EXPECT_EQ(run->spec.variant, "dmd");
  EXPECT_EQ(run->spec.dataset, "synthetic-mosi");
  EXPECT_EQ(run->spec.profile, "smoke");
  EXPECT_EQ(run->spec.seed, 1111);
  EXPECT_EQ(run->spec.plan_index, 3);
  EXPECT_EQ(run->spec.config_json, R"({"lr": 0.0001})");
  EXPECT_EQ(run->prov.git_commit, "abc123def456");
  EXPECT_EQ(run->prov.libtorch_version, "1.13.1");
  EXPECT_EQ(run->prov.host, "node7");
  EXPECT_EQ(run->prov.threads, 4);
  EXPECT_TRUE(run->prov.deterministic);
  EXPECT_EQ(run->prov.determinism_flags, "cpu");
  EXPECT_EQ(run->prov.dataset_sha256, std::string(64, 'f'));
  EXPECT_EQ(run->best_epoch, 2);
  EXPECT_DOUBLE_EQ(run->wall_seconds, 12.5);
  EXPECT_EQ(run->started_at.size(), 24u);  // 2025-01-02T03:04:05.678Z
  EXPECT_LE(run->started_at, run->finished_at);

  const auto metrics = store.metrics("run-a");
  ASSERT_EQ(metrics.size(), 4u + 9u);
  int finals = 0;
  for (const auto& m : metrics) {
    if (m.split == "test") {
      EXPECT_EQ(m.epoch, -1);
      ++finals;
      if (m.name == "mae") {
        EXPECT_DOUBLE_EQ(m.value, 0.7);
      }
    } else {
      EXPECT_EQ(m.split, "valid");
      if (m.name == "mae" && m.epoch == 2) {
        EXPECT_DOUBLE_EQ(m.value, 0.4);
      }
    }
  }
  EXPECT_EQ(finals, 9);
  const auto epochs = store.epochs("run-a");
  ASSERT_EQ(epochs.size(), 2u);
  EXPECT_EQ(epochs[1].epoch, 2);
  EXPECT_DOUBLE_EQ(epochs[1].train_loss, 0.5);
  EXPECT_DOUBLE_EQ(epochs[1].valid_loss, 0.45);
  EXPECT_DOUBLE_EQ(epochs[1].grad_norm, 0.3);
  const auto tp = store.throughput("run-a");
  ASSERT_EQ(tp.size(), 2u);
  EXPECT_EQ(tp[0].phase, "train");
  EXPECT_DOUBLE_EQ(tp[0].samples_per_s, 1000.0);
  EXPECT_EQ(tp[1].phase, "eval");
  EXPECT_DOUBLE_EQ(tp[1].latency_p95_ms, 9.0);
  EXPECT_EQ(tp[1].parameters, 123456);
  EXPECT_EQ(tp[1].peak_memory_bytes, 1 << 19);
  const auto edges = store.edges("run-a");
  ASSERT_EQ(edges.size(), 3u);
  EXPECT_EQ(edges[0].space, "hetero");
  EXPECT_EQ(edges[0].from, "a");
  EXPECT_EQ(edges[0].to, "l");
  EXPECT_DOUBLE_EQ(edges[0].weight, 0.3);
  const auto orders = store.batch_orders("run-a");
  ASSERT_EQ(orders.size(), 2u);
  EXPECT_EQ(orders[0].split, "test");
  EXPECT_EQ(orders[0].seed, 18446744073709551557ull);  // the full unsigned 64-bit range survives
  EXPECT_EQ(orders[1].split, "test_shuffle_1");
  EXPECT_EQ(orders[1].seed, 42u);
  const auto bench = store.bench();
  ASSERT_EQ(bench.size(), 1u);
  EXPECT_EQ(bench[0].name, "BM_Forward/32");
  EXPECT_DOUBLE_EQ(bench[0].median_ns, 1.5e6);
  EXPECT_EQ(bench[0].repetitions, 10);
  EXPECT_EQ(bench[0].prov.device, "cpu");
  EXPECT_DOUBLE_EQ(bench[0].flops_per_sample, 6.88e8);
  EXPECT_DOUBLE_EQ(bench[0].product_flops_per_sample, 6.2e8);
  EXPECT_DOUBLE_EQ(bench[0].product_ms_per_sample, 6.9);
  EXPECT_DOUBLE_EQ(bench[0].mm_gflops, 147.2);
}

TEST(StoreTest, UndefinedMetricIsNotStored) {
  // Corr of constant predictions is NaN (np.corrcoef gives nan); SQLite would turn it into NULL, which the
  // metric table refuses, so the run is completed without that metric.
  TempDir dir("dmd_store");
  Store store(dir.file("r.sqlite"));
  store.start_run(spec("flat"), prov());
  store.complete_run("flat", 1, 1.0,
                     {{"test", "mae", 0.9, -1}, {"test", "corr", std::nan(""), -1}, {"test", "pred_std_ratio", 0, -1}},
                     {}, {});
  const auto m = store.metrics("flat");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].name, "mae");
  EXPECT_EQ(m[1].name, "pred_std_ratio");
  EXPECT_EQ(store.find_run("flat")->status, RunStatus::Completed);
}

TEST(StoreTest, VersionThreeDatabaseIsMigratedKeepingItsRows) {
  // A schema-3 database (a new one rolled back: migration 4 undone) gains the batch_order table; its runs stay.
  TempDir dir("dmd_store");
  const auto path = dir.file("v3.sqlite");
  {
    Store v4(path);
    full_run(v4, spec("kept"));
    v4.add_bench({BenchRow{"set-old", "BM_Old", 3, 4, 5, 6, 7, {}}});
  }
  // Roll the file back to version 3: drop what migrations 4 (batch_order), 5 (the Slurm provenance columns),
  // 6 (robustness, checkpoint) and 7 (the bench table's distance-to-hardware columns) added and lower the
  // version.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(
          db,
          "DROP TABLE batch_order; DROP TABLE robustness; DROP TABLE checkpoint; "
          "DELETE FROM schema_version WHERE version >= 4; "
          "ALTER TABLE run DROP COLUMN slurm_job_id; ALTER TABLE run DROP COLUMN slurm_array_task; "
          "ALTER TABLE bench DROP COLUMN slurm_job_id; ALTER TABLE bench DROP COLUMN slurm_array_task; "
          "ALTER TABLE bench DROP COLUMN flops_per_sample; "
          "ALTER TABLE bench DROP COLUMN product_flops_per_sample; "
          "ALTER TABLE bench DROP COLUMN product_ms_per_sample; ALTER TABLE bench DROP COLUMN mm_gflops; "
          "PRAGMA user_version = 3",
          nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  EXPECT_NE(error_of([&] { Store s(path, true); }).find(fmt::format("older than this dmdbench ({})", kSchemaVersion)),
            std::string::npos);
  Store migrated(path);
  EXPECT_EQ(migrated.schema_version(), kSchemaVersion);
  EXPECT_EQ(migrated.find_run("kept")->status, RunStatus::Completed);
  EXPECT_EQ(migrated.metrics("kept").size(), 4u + 9u);
  EXPECT_TRUE(migrated.batch_orders("kept").empty());
  EXPECT_EQ(counts(migrated).at("batch_order"), 0);
  const auto bench = migrated.bench("set-old");  // kept; the distance to hardware reads "not measured"
  ASSERT_EQ(bench.size(), 1u);
  EXPECT_DOUBLE_EQ(bench[0].median_ns, 3);
  EXPECT_DOUBLE_EQ(bench[0].flops_per_sample, 0);
  EXPECT_DOUBLE_EQ(bench[0].mm_gflops, 0);
}

TEST(StoreTest, StatusTransitions) {
  TempDir dir("dmd_store");
  Store store(dir.file("r.sqlite"));
  EXPECT_EQ(store.queue_runs({spec("q1"), spec("q2")}), 2);
  EXPECT_EQ(store.queue_runs({spec("q1"), spec("q3")}), 1);
  EXPECT_EQ(store.find_run("q1")->status, RunStatus::Queued);

  store.start_run(spec("q1"), prov());
  EXPECT_EQ(store.find_run("q1")->status, RunStatus::Running);
  const auto before = store.find_run("q1")->heartbeat_at;
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  store.heartbeat("q1");
  EXPECT_GT(store.find_run("q1")->heartbeat_at, before);

  store.complete_run("q1", 1, 3.0, final_metrics(0.7), {}, {});
  EXPECT_EQ(store.find_run("q1")->status, RunStatus::Completed);
  EXPECT_NE(error_of([&] { store.complete_run("q1", 1, 3.0, {}, {}, {}); }).find("is COMPLETED, not RUNNING"),
            std::string::npos);
  EXPECT_NE(error_of([&] { store.start_run(spec("q1"), prov()); }).find("already completed"), std::string::npos);
  EXPECT_NE(error_of([&] { store.fail_run("q1", "x"); }).find("cannot be marked failed"), std::string::npos);
  EXPECT_NE(error_of([&] { store.heartbeat("nope"); }).find("has no run nope"), std::string::npos);

  store.start_run(spec("q2"), prov());
  store.fail_run("q2", "loss became NaN at epoch 3");
  const auto failed = store.find_run("q2");
  EXPECT_EQ(failed->status, RunStatus::Failed);
  EXPECT_EQ(failed->error, "loss became NaN at epoch 3");
  EXPECT_GE(failed->wall_seconds, 0.0);
  EXPECT_LT(failed->wall_seconds, 60.0);
  EXPECT_NE(error_of([&] { store.add_epoch("q2", {1, 1, 1, 1, 1, 1}, {}); }).find("is FAILED, not RUNNING"),
            std::string::npos);
  store.heartbeat("q2");  // a late heartbeat leaves a finished run alone
  EXPECT_EQ(store.find_run("q2")->status, RunStatus::Failed);

  EXPECT_TRUE(store.delete_run("q1"));
  EXPECT_FALSE(store.delete_run("q1"));
  EXPECT_FALSE(store.find_run("q1").has_value());
  EXPECT_TRUE(store.metrics("q1").empty());
  EXPECT_EQ(parse_status("INTERRUPTED"), RunStatus::Interrupted);
  EXPECT_THROW(parse_status("DONE"), StoreError);
}

TEST(StoreTest, StartRunReplacesInterruptedRunWithoutDuplicates) {
  TempDir dir("dmd_store");
  Store store(dir.file("r.sqlite"));
  store.start_run(spec("r1"), prov());
  for (int e = 1; e <= 3; ++e) store.add_epoch("r1", {e, 1, 1, 1, 1, 1}, {{"valid", "mae", 0.9, e}});
  ASSERT_EQ(store.mark_stale_interrupted(-1.0), 1);  // every heartbeat is older than "one second from now"
  ASSERT_EQ(store.find_run("r1")->status, RunStatus::Interrupted);
  EXPECT_NE(store.find_run("r1")->error.find("no heartbeat"), std::string::npos);

  auto redo = spec("r1");
  redo.config_json = R"({"lr": 0.0002})";
  store.start_run(redo, prov());
  EXPECT_TRUE(store.epochs("r1").empty());
  EXPECT_TRUE(store.metrics("r1").empty());
  EXPECT_EQ(store.find_run("r1")->error, "");
  EXPECT_EQ(store.find_run("r1")->spec.config_json, R"({"lr": 0.0002})");
  store.add_epoch("r1", {1, 1, 1, 1, 1, 1}, {{"valid", "mae", 0.9, 1}});
  store.complete_run("r1", 1, 2.0, final_metrics(0.7), {}, {});
  const auto c = counts(store);
  EXPECT_EQ(c.at("run"), 1);
  EXPECT_EQ(c.at("epoch"), 1);
  EXPECT_EQ(c.at("metric"), 1 + 9);
}

TEST(StoreTest, MarkStaleInterruptedOnlyOldHeartbeats) {
  TempDir dir("dmd_store");
  Store store(dir.file("r.sqlite"));
  store.start_run(spec("old"), prov());
  store.start_run(spec("fresh"), prov());
  store.queue_runs({spec("queued")});
  ASSERT_EQ(sqlite3_exec(store.native_handle(),
                         "UPDATE run SET heartbeat_at = '2020-01-01T00:00:00.000Z' WHERE run_id = 'old'", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  EXPECT_EQ(store.mark_stale_interrupted(600), 1);
  EXPECT_EQ(store.find_run("old")->status, RunStatus::Interrupted);
  EXPECT_EQ(store.find_run("fresh")->status, RunStatus::Running);
  EXPECT_EQ(store.find_run("queued")->status, RunStatus::Queued);
  EXPECT_EQ(store.mark_stale_interrupted(600), 0);
}

TEST(StoreTest, NewerSchemaRefused) {
  TempDir dir("dmd_store");
  const auto path = dir.file("r.sqlite");
  { Store store(path); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const int newer = dmdbench::results::kSchemaVersion + 1;
  ASSERT_EQ(
      sqlite3_exec(db, fmt::format("PRAGMA user_version = {}", newer).c_str(), nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  const std::string expected = "database " + path + " has schema version " + std::to_string(newer) +
                               ", newer than this dmdbench (" +
                               std::to_string(dmdbench::results::kSchemaVersion) + "); use a newer dmdbench";
  EXPECT_EQ(error_of([&] { Store s(path); }), expected);
  EXPECT_EQ(error_of([&] { Store s(path, true); }), expected);
}

TEST(StoreTest, CorruptFileRefusedAndLeftUnchanged) {
  TempDir dir("dmd_store");
  const auto path = dir.file("results.sqlite");
  {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 200; ++i) out << "this is a CSV file, not a database,1,2,3\n";
  }
  const auto before = read_bytes(path);
  const auto msg = error_of([&] { Store s(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("file is not a database"), std::string::npos) << msg;
  EXPECT_TRUE(read_bytes(path) == before);  // no byte dump on failure
  EXPECT_FALSE(fs::exists(path + "-wal"));
  EXPECT_FALSE(fs::exists(path + "-shm"));
  EXPECT_NE(error_of([&] { Store s(path, true); }).find("file is not a database"), std::string::npos);
  EXPECT_TRUE(read_bytes(path) == before);  // no byte dump on failure
}

TEST(StoreTest, ForeignSqliteDatabaseRefusedAndLeftUnchanged) {
  TempDir dir("dmd_store");
  const auto path = dir.file("other.db");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('hello')", nullptr, nullptr,
                         nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  const auto before = read_bytes(path);
  EXPECT_NE(error_of([&] { Store s(path); }).find("not a dmdbench one"), std::string::npos);
  EXPECT_TRUE(read_bytes(path) == before);  // no byte dump on failure
}

TEST(StoreTest, ReadOnlyOpenNeedsAnExistingFile) {
  TempDir dir("dmd_store");
  const auto path = dir.file("missing.sqlite");
  EXPECT_EQ(error_of([&] { Store s(path, true); }), "database " + path + " does not exist");
  EXPECT_FALSE(fs::exists(path));
}

// Root ignores permission bits, so the refusal is checked in a child that drops to an unprivileged user.
TEST(StoreTest, ReadOnlyDirectoryRefused) {
  TempDir dir("dmd_store");
  const auto ro = dir.path / "ro";
  fs::create_directory(ro);
  const auto existing = (ro / "existing.sqlite").string();
  {
    Store s(existing);
    full_run(s, spec("r1"));
  }
  sqlite3* db = nullptr;  // fold the WAL back so the read-only directory holds one file
  ASSERT_EQ(sqlite3_open(existing.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA journal_mode = DELETE", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  const auto before = read_bytes(existing);
  fs::permissions(dir.path, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec |
                                fs::perms::group_read | fs::perms::others_read);
  fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                          fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(existing, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                fs::perms::others_read);
  const auto fresh = (ro / "new.sqlite").string();
  int out_pipe[2];
  ASSERT_EQ(pipe(out_pipe), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(out_pipe[0]);
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(3);
    std::string reads;
    try {
      Store s(existing, /*read_only=*/true);
      reads = s.runs().size() == 1 ? "read ok" : "read wrong";
    } catch (const StoreError& e) {
      reads = e.what();
    }
    const std::string text =
        error_of([&] { Store s(fresh); }) + "\n" + error_of([&] { Store s(existing); }) + "\n" + reads + "\n";
    const bool written = write(out_pipe[1], text.data(), text.size()) == static_cast<ssize_t>(text.size());
    _exit(written ? 0 : 4);
  }
  close(out_pipe[1]);
  std::string text;
  char buf[512];
  for (ssize_t n; (n = read(out_pipe[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  close(out_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  std::istringstream in(text);
  std::string fresh_msg, existing_msg, read_msg;
  std::getline(in, fresh_msg);
  std::getline(in, existing_msg);
  std::getline(in, read_msg);
  EXPECT_EQ(fresh_msg, "cannot write database " + fresh + ": its directory " + ro.string() + " is read-only");
  EXPECT_EQ(existing_msg,
            "cannot write database " + existing + ": its directory " + ro.string() + " is read-only");
  EXPECT_EQ(read_msg, "read ok");
  EXPECT_FALSE(fs::exists(fresh));
  EXPECT_TRUE(read_bytes(existing) == before);
}

TEST(StoreTest, DiskFullRollsBackAndNamesThePath) {
  TempDir dir("dmd_store");
  const auto path = dir.file("r.sqlite");
  Store store(path);
  store.start_run(spec("r1"), prov());
  store.add_epoch("r1", {1, 1, 1, 1, 1, 1}, {});
  // Cap the file at its current size: the next page SQLite needs fails with SQLITE_FULL.
  ASSERT_EQ(sqlite3_exec(store.native_handle(), "PRAGMA max_page_count = 1", nullptr, nullptr, nullptr), SQLITE_OK);
  std::vector<MetricRow> many;
  for (int i = 0; i < 5000; ++i) many.push_back({"test", "metric_with_a_long_name_" + std::to_string(i), 0.5, -1});
  const auto msg = error_of([&] { store.complete_run("r1", 1, 1.0, many, {}, {}); });
  EXPECT_NE(msg.find("disk full while writing database " + path), std::string::npos) << msg;
  EXPECT_NE(msg.find("rolled back"), std::string::npos);
  EXPECT_EQ(store.find_run("r1")->status, RunStatus::Running);
  EXPECT_TRUE(store.metrics("r1").empty());
  EXPECT_EQ(store.epochs("r1").size(), 1u);
  ASSERT_EQ(sqlite3_exec(store.native_handle(), "PRAGMA max_page_count = 1073741823", nullptr, nullptr, nullptr),
            SQLITE_OK);
  store.complete_run("r1", 1, 1.0, many, {}, {});
  EXPECT_EQ(store.metrics("r1").size(), 5000u);
  EXPECT_EQ(store.find_run("r1")->status, RunStatus::Completed);
}

TEST(StoreTest, TwoProcessesWriteOneDatabaseAtOnce) {
  TempDir dir("dmd_store");
  const auto path = dir.file("shared.sqlite");  // created by the children themselves, at the same time
  constexpr int kRunsPerChild = 40;
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  std::vector<pid_t> children;
  for (int child = 0; child < 2; ++child) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(go[1]);
      char c;
      if (read(go[0], &c, 1) < 0) _exit(4);  // wait until both exist, then start together
      try {
        Store store(path);
        for (int i = 0; i < kRunsPerChild; ++i) {
          const auto s = spec("c" + std::to_string(child) + "-" + std::to_string(i), "dmd", i);
          full_run(store, s, 3, 0.7 + 0.001 * i);
          store.heartbeat(s.run_id);
          store.mark_stale_interrupted(3600);
        }
      } catch (const std::exception& e) {
        std::ofstream(dir.file("child" + std::to_string(child) + ".err")) << e.what();
        _exit(1);
      }
      _exit(0);
    }
    children.push_back(pid);
  }
  close(go[0]);
  close(go[1]);  // EOF releases both children at once
  for (const pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << read_bytes(dir.file("child0.err")) << read_bytes(dir.file("child1.err"));
  }
  Store store(path, true);
  const auto c = counts(store);
  EXPECT_EQ(c.at("run"), 2 * kRunsPerChild);
  EXPECT_EQ(c.at("epoch"), 2 * kRunsPerChild * 3);
  EXPECT_EQ(c.at("metric"), 2 * kRunsPerChild * (3 * 2 + 9));
  EXPECT_EQ(c.at("throughput"), 2 * kRunsPerChild * 2);
  EXPECT_EQ(c.at("edge"), 2 * kRunsPerChild * 3);
  for (const auto& r : store.runs()) EXPECT_EQ(r.status, RunStatus::Completed) << r.spec.run_id;
}

TEST(StoreTest, ThreadsShareOneStore) {
  TempDir dir("dmd_store");
  Store store(dir.file("r.sqlite"));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&store, t] {
      for (int i = 0; i < 10; ++i) full_run(store, spec("t" + std::to_string(t) + "-" + std::to_string(i)), 1);
    });
  for (auto& th : threads) th.join();
  const auto c = counts(store);
  EXPECT_EQ(c.at("run"), 40);
  EXPECT_EQ(c.at("metric"), 40 * (2 + 9));
}

TEST(StoreTest, MergeIsIdempotentAndCompletedWins) {
  TempDir dir("dmd_store");
  const auto a_path = dir.file("a.sqlite"), b_path = dir.file("b.sqlite");
  Store a(a_path);
  a.add_experiment({"exp1", "2025-01-01T00:00:00.000Z", "cmd a", ""});
  full_run(a, spec("both-completed"), 2, 0.70);
  a.start_run(spec("completed-in-b"), prov());
  a.add_epoch("completed-in-b", {1, 9, 9, 9, 9, 9}, {});
  a.mark_stale_interrupted(-1);
  a.start_run(spec("running-in-b"), prov());
  {
    Store b(b_path);
    b.add_experiment({"exp1", "2025-01-01T00:00:00.000Z", "cmd b", ""});
    b.add_experiment({"exp2", "2025-01-02T00:00:00.000Z", "cmd b2", ""});
    full_run(b, spec("both-completed"), 3, 0.99);
    full_run(b, spec("completed-in-b"), 2, 0.71);
    b.start_run(spec("running-in-b"), prov());
    b.add_epoch("running-in-b", {1, 5, 5, 5, 5, 5}, {});
    full_run(b, spec("only-b", "dmd_nohomo"), 2, 0.72);
    BenchRow row;
    row.bench_set = "s1";
    row.name = "BM_X";
    b.add_bench({row});
  }
  const auto first = a.merge_from(b_path);
  EXPECT_EQ(first.runs_added, 1);
  EXPECT_EQ(first.runs_replaced, 1);
  EXPECT_EQ(first.experiments_added, 1);
  EXPECT_EQ(first.bench_rows_added, 1);
  const auto after_first = counts(a);
  EXPECT_EQ(after_first.at("run"), 4);
  EXPECT_EQ(after_first.at("epoch"), 2 + 2 + 2);  // both-completed (a's 2), completed-in-b (b's 2), only-b
  EXPECT_EQ(after_first.at("batch_order"), 2 + 2 + 2);  // the same three completed runs, two passes each
  EXPECT_EQ(a.find_run("completed-in-b")->status, RunStatus::Completed);
  EXPECT_EQ(a.epochs("completed-in-b").size(), 2u);
  EXPECT_DOUBLE_EQ(a.epochs("completed-in-b")[0].train_loss, 1.0);  // b's rows, not a's leftovers
  EXPECT_EQ(a.epochs("running-in-b").size(), 0u);                    // a's own non-completed row stays
  for (const auto& m : a.metrics("both-completed"))
    if (m.name == "mae" && m.split == "test") {
      EXPECT_DOUBLE_EQ(m.value, 0.70);  // a's completed row stays
    }
  EXPECT_EQ(a.find_run("only-b")->spec.variant, "dmd_nohomo");

  const auto second = a.merge_from(b_path);
  EXPECT_EQ(second.runs_added + second.runs_replaced + second.experiments_added + second.bench_rows_added, 0);
  EXPECT_EQ(counts(a), after_first);
  EXPECT_NE(error_of([&] { a.merge_from(a_path); }).find("into itself"), std::string::npos);
  EXPECT_EQ(error_of([&] { a.merge_from(dir.file("nope.sqlite")); }),
            "database " + dir.file("nope.sqlite") + " does not exist");
}

TEST(StoreTest, LatestExperimentIsTheMostRecentlyActive) {
  TempDir dir("dmd_store");
  Store store(dir.file("r.sqlite"));
  EXPECT_FALSE(store.latest_experiment().has_value());
  store.add_experiment({"exp-a", "2025-01-01T00:00:00.000Z", "", ""});
  store.add_experiment({"exp-b", "2025-01-02T00:00:00.000Z", "", ""});
  EXPECT_EQ(store.latest_experiment()->id, "exp-b");
  auto resumed = spec("r1");
  resumed.experiment_id = "exp-a";
  store.start_run(resumed, prov());  // exp-a resumed today
  EXPECT_EQ(store.latest_experiment()->id, "exp-a");
  EXPECT_EQ(store.latest_experiment()->created_at, "2025-01-01T00:00:00.000Z");
  EXPECT_EQ(store.runs("exp-a").size(), 1u);
  EXPECT_TRUE(store.runs("exp-b").empty());
  EXPECT_EQ(store.runs().size(), 1u);
}

TEST(StoreTest, BenchSetsLatestFirst) {
  TempDir dir("dmd_store");
  Store store(dir.file("r.sqlite"));
  EXPECT_TRUE(store.bench().empty());
  BenchRow r;
  r.bench_set = "set-a";
  r.name = "BM_A";
  r.median_ns = 1;
  store.add_bench({r});
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  r.bench_set = "set-b";
  r.median_ns = 2;
  store.add_bench({r, BenchRow{"set-b", "BM_B", 3, 4, 5, 6, 7, {}}});
  EXPECT_EQ(store.bench_sets(), (std::vector<std::string>{"set-a", "set-b"}));
  const auto latest = store.bench();
  ASSERT_EQ(latest.size(), 2u);
  EXPECT_EQ(latest[0].bench_set, "set-b");
  EXPECT_DOUBLE_EQ(latest[0].median_ns, 2);
  EXPECT_EQ(latest[1].name, "BM_B");
  EXPECT_DOUBLE_EQ(latest[1].p95_ns, 4);
  EXPECT_DOUBLE_EQ(store.bench("set-a").at(0).median_ns, 1);
}

TEST(StoreLsTest, OneLinePerRunWithFinalMetrics) {
  TempDir dir("dmd_store");
  Store store(dir.file("r.sqlite"));
  full_run(store, spec("0123456789abcdef", "dmd", 1111), 1, 0.7123);
  store.start_run(spec("fedcba9876543210", "dmd_nohetero", 1112), prov());
  const auto text = format_ls(store);
  EXPECT_EQ(text,
            "run           variant       dataset         seed  status        MAE    Corr  Acc-2 non0 %  F1 non0 %  Acc-7 %\n"
            "0123456789ab  dmd           synthetic-mosi  1111  COMPLETED  0.7123  0.7500         85.00      84.00    45.00\n"
            "fedcba987654  dmd_nohetero  synthetic-mosi  1112  RUNNING         -       -             -          -        -\n");
  EXPECT_EQ(format_ls(store, "nothing-here").substr(format_ls(store, "nothing-here").find('\n') + 1),
            "(no runs in experiment nothing-here)\n");
}

TEST(StoreClaimTest, ClaimIsACompareAndSetOnStatusAndOwner) {
  TempDir dir("dmd_store");
  Store store(dir.file("r.sqlite"));
  const auto a = store.claim_run(spec("c1"), "owner-a");
  EXPECT_TRUE(a.claimed);
  EXPECT_EQ(a.status, RunStatus::Queued);  // there was no row
  const auto b = store.claim_run(spec("c1"), "owner-b");
  EXPECT_FALSE(b.claimed);
  EXPECT_EQ(b.status, RunStatus::Running);
  EXPECT_EQ(b.owner, "owner-a");
  // Only the owner writes; another process's write is refused and changes nothing.
  EXPECT_THROW(store.add_epoch("c1", {1, 1, 1, 1, 1, 1}, {}, "owner-b"), dmdbench::results::OwnershipLost);
  EXPECT_TRUE(store.epochs("c1").empty());
  store.add_epoch("c1", {1, 1, 1, 1, 1, 1}, {}, "owner-a");
  // A stale owner is taken over in two steps that each succeed once: reclaim (RUNNING -> INTERRUPTED), claim.
  EXPECT_FALSE(store.reclaim_run("c1", "owner-x", "gone"));
  EXPECT_TRUE(store.reclaim_run("c1", "owner-a", "interrupted: its sweep is gone"));
  EXPECT_FALSE(store.reclaim_run("c1", "owner-a", "again"));
  const auto c = store.claim_run(spec("c1"), "owner-b");
  EXPECT_TRUE(c.claimed);
  EXPECT_EQ(c.status, RunStatus::Interrupted);
  EXPECT_TRUE(store.epochs("c1").empty()) << "the new claim starts clean";
  EXPECT_EQ(store.find_run("c1")->attempts, 2);
  EXPECT_THROW(store.complete_run("c1", 1, 1.0, final_metrics(0.7), {}, {}, "owner-a"),
               dmdbench::results::OwnershipLost);
  store.complete_run("c1", 1, 1.0, final_metrics(0.7), {}, {}, "owner-b");
  EXPECT_FALSE(store.claim_run(spec("c1"), "owner-c").claimed);  // COMPLETED stays done
  EXPECT_EQ(store.claim_run(spec("c1"), "owner-c").status, RunStatus::Completed);
  EXPECT_TRUE(store.claim_run(spec("c1"), "owner-c", /*redo_completed=*/true).claimed);
}

TEST(StoreClaimTest, ExactlyOneOfFourProcessesClaimsARun) {
  // Four processes race for the same run at random offsets, 50 times: each time exactly one claim succeeds.
  TempDir dir("dmd_store");
  const std::string path = dir.file("r.sqlite");
  { Store create(path); }
  for (int rep = 0; rep < 50; ++rep) {
    const std::string id = "race" + std::to_string(rep);
    std::vector<pid_t> kids;
    for (int k = 0; k < 4; ++k) {
      const pid_t pid = fork();
      if (pid == 0) {
        usleep(static_cast<useconds_t>((rep * 7919 + k * 104729) % 3000));
        Store s(path);
        _exit(s.claim_run(spec(id), "owner-" + std::to_string(k)).claimed ? 0 : 1);
      }
      kids.push_back(pid);
    }
    int claimed = 0;
    for (pid_t p : kids) {
      int status = 0;
      waitpid(p, &status, 0);
      ASSERT_TRUE(WIFEXITED(status));
      claimed += WEXITSTATUS(status) == 0;
    }
    EXPECT_EQ(claimed, 1) << "repetition " << rep;
  }
  Store s(path, true);
  for (const auto& r : s.runs()) EXPECT_EQ(r.attempts, 1) << r.spec.run_id;
}

TEST(StoreClaimTest, ReadOnlyOpenCreatesNoWalOrShm) {
  TempDir dir("dmd_store");
  const std::string path = dir.file("r.sqlite");
  {
    Store s(path);
    s.start_run(spec("x"), prov());
  }
  ASSERT_FALSE(std::filesystem::exists(path + "-wal"));
  {
    Store ro(path, true);
    EXPECT_EQ(ro.runs().size(), 1u);
    EXPECT_FALSE(std::filesystem::exists(path + "-wal"));
    EXPECT_FALSE(std::filesystem::exists(path + "-shm"));
  }
  // While a writer has it open, a reader sees its committed rows.
  Store w(path);
  w.start_run(spec("y"), prov());
  Store ro(path, true);
  EXPECT_EQ(ro.runs().size(), 2u);
}
