#include "results/store.h"

#include <fmt/format.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iterator>
#include <thread>

#include "results/schema.h"
#include "results/statement.h"

namespace dmdbench::results {

namespace fs = std::filesystem;
using detail::Statement;
using detail::Transaction;

namespace {


// Column lists are built from constants (the provenance field list), never from values.
std::string provenance_columns() {
  std::string s;
  for (const auto& f : provenance_fields()) s += std::string(s.empty() ? "" : ", ") + f.column;
  return s;
}
const std::string& run_columns() {
  static const std::string s = "run_id, experiment_id, variant, dataset, profile, seed, plan_index, status, "
                               "heartbeat_at, error, config_json, " + provenance_columns() +
                               ", started_at, finished_at, wall_seconds, best_epoch, owner, attempts";
  return s;
}
// The bench table's own columns, in the order add_bench binds and bench() reads them; the provenance columns
// follow them, then created_at.
constexpr const char* kBenchOwnColumns[] = {"bench_set",
                                            "name",
                                            "median_ns",
                                            "p95_ns",
                                            "samples_per_s",
                                            "repetitions",
                                            "peak_memory_bytes",
                                            "flops_per_sample",
                                            "product_flops_per_sample",
                                            "product_ms_per_sample",
                                            "mm_gflops"};
constexpr int kBenchOwn = static_cast<int>(std::size(kBenchOwnColumns));
const std::string& bench_columns() {
  static const std::string s = [] {
    std::string own;
    for (const char* c : kBenchOwnColumns) own += std::string(own.empty() ? "" : ", ") + c;
    return own + ", " + provenance_columns() + ", created_at";
  }();
  return s;
}
std::string placeholders(std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += i ? ", ?" : "?";
  return s;
}
// One placeholder per column of a comma-separated column list.
std::string placeholders_for(const std::string& columns) {
  return placeholders(static_cast<std::size_t>(std::count(columns.begin(), columns.end(), ',')) + 1);
}

// Provenance columns start at `first`, in field-list order.
Provenance read_provenance(const Statement& s, int first) {
  Provenance p;
  for (const auto& f : provenance_fields()) set_field_text(p, f, s.text(first++));
  return p;
}
int bind_provenance(Statement& s, int first, const Provenance& p) {
  for (const auto& f : provenance_fields()) s.bind(first++, field_text(p, f));
  return first;
}

const char* const kChildTables[] = {"metric", "epoch", "throughput", "edge", "batch_order", "robustness", "checkpoint"};

std::string utc_time(std::chrono::system_clock::time_point tp) {
  using namespace std::chrono;
  const std::time_t t = system_clock::to_time_t(tp);
  const auto ms = duration_cast<milliseconds>(tp.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(ms));
}

RunRow read_run(const Statement& s) {
  RunRow r;
  r.spec.run_id = s.text(0);
  r.spec.experiment_id = s.text(1);
  r.spec.variant = s.text(2);
  r.spec.dataset = s.text(3);
  r.spec.profile = s.text(4);
  r.spec.seed = s.integer(5);
  r.spec.plan_index = static_cast<int>(s.integer(6));
  r.status = parse_status(s.text(7));
  r.heartbeat_at = s.text(8);
  r.error = s.text(9);
  r.spec.config_json = s.text(10);
  r.prov = read_provenance(s, 11);
  const int after = 11 + static_cast<int>(provenance_fields().size());
  r.started_at = s.text(after);
  r.finished_at = s.text(after + 1);
  r.wall_seconds = s.real(after + 2);
  r.best_epoch = static_cast<int>(s.integer(after + 3));
  r.owner = s.text(after + 4);
  r.attempts = static_cast<int>(s.integer(after + 5));
  return r;
}

// The run's status inside the current transaction; nullopt when there is no such run.
std::optional<RunStatus> status_of(sqlite3* db, const std::string& path, const std::string& run_id) {
  Statement s(db, path, "SELECT status FROM run WHERE run_id = ?");
  s.bind(1, run_id);
  if (!s.step()) return std::nullopt;
  return parse_status(s.text(0));
}

RunStatus require_status(sqlite3* db, const std::string& path, const std::string& run_id) {
  auto st = status_of(db, path, run_id);
  if (!st) throw StoreError(fmt::format("database {} has no run {}", path, run_id));
  return *st;
}

// With a non-empty owner: the run must still be RUNNING under that owner, or nothing is written.
void require_owner(sqlite3* db, const std::string& path, const std::string& run_id, const std::string& owner) {
  if (owner.empty()) return;
  Statement s(db, path, "SELECT status, owner FROM run WHERE run_id = ?");
  s.bind(1, run_id);
  if (!s.step()) throw StoreError(fmt::format("database {} has no run {}", path, run_id));
  if (s.text(1) != owner)
    throw OwnershipLost(fmt::format("run {} was taken over by another process ({}, {}); this process stopped "
                                    "writing it", run_id, s.text(0), s.text(1).empty() ? "no owner" : s.text(1)));
}

void delete_children(sqlite3* db, const std::string& path, const std::string& run_id) {
  for (const char* table : kChildTables) {
    Statement s(db, path, fmt::format("DELETE FROM {} WHERE run_id = ?", table).c_str());
    s.bind(1, run_id).run();
  }
}

void insert_metrics(sqlite3* db, const std::string& path, const std::string& run_id,
                    const std::vector<MetricRow>& rows, const char* default_split, int default_epoch) {
  Statement s(db, path, "INSERT OR REPLACE INTO metric (run_id, split, name, value, epoch) VALUES (?, ?, ?, ?, ?)");
  for (const auto& m : rows) {
    if (std::isnan(m.value)) continue;  // undefined (SQLite would store NULL): the metric is absent
    s.bind_all(run_id, m.split.empty() ? std::string(default_split) : m.split, m.name, m.value,
               m.epoch < 0 ? default_epoch : m.epoch);
    s.run();
    s.reset();
  }
}

int64_t scalar(sqlite3* db, const std::string& path, const char* sql) {
  Statement s(db, path, sql);
  return s.step() ? s.integer(0) : 0;
}

int user_version(sqlite3* db, const std::string& path) {
  Statement s(db, path, "PRAGMA user_version");
  return s.step() ? static_cast<int>(s.integer(0)) : 0;
}

// A path as the path part of an SQLite URI: '%', '?' and '#' percent-encoded.
std::string uri_path(const std::string& path) {
  std::string out;
  for (char c : path) {
    if (c == '%' || c == '?' || c == '#') out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    else out += c;
  }
  return out;
}

// Switching to WAL can report SQLITE_BUSY without consulting the busy handler (another process creating the
// same file at the same moment), so it is retried here for as long as the busy timeout.
void enable_wal(sqlite3* db, const std::string& path) {
  {
    Statement mode(db, path, "PRAGMA journal_mode");
    if (mode.step() && mode.text(0) == "wal") return;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(busy_timeout_seconds() * 1000);
  for (;;) {
    const int rc = sqlite3_exec(db, "PRAGMA journal_mode = WAL", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) return;
    const int primary = rc & 0xff;
    if ((primary != SQLITE_BUSY && primary != SQLITE_LOCKED) || std::chrono::steady_clock::now() > deadline)
      detail::fail(db, rc, path, "switching to WAL mode");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

std::string utc_now() { return utc_time(std::chrono::system_clock::now()); }

int busy_timeout_seconds() {
  static const int seconds = [] {
    const char* env = std::getenv("DMDBENCH_BUSY_TIMEOUT_S");
    const int v = env ? std::atoi(env) : 0;
    return v > 0 ? v : 30;
  }();
  return seconds;
}

double seconds_since(const std::string& utc) {
  std::tm tm{};
  int ms = 0;
  if (utc.size() < 19 || !strptime(utc.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return 1e18;
  if (utc.size() >= 23 && utc[19] == '.') ms = std::atoi(utc.substr(20, 3).c_str());
  const auto tp = std::chrono::system_clock::from_time_t(timegm(&tm)) + std::chrono::milliseconds(ms);
  return std::chrono::duration<double>(std::chrono::system_clock::now() - tp).count();
}

const char* status_name(RunStatus s) {
  switch (s) {
    case RunStatus::Queued: return "QUEUED";
    case RunStatus::Running: return "RUNNING";
    case RunStatus::Completed: return "COMPLETED";
    case RunStatus::Failed: return "FAILED";
    case RunStatus::Interrupted: return "INTERRUPTED";
  }
  return "UNKNOWN";
}

RunStatus parse_status(const std::string& s) {
  for (auto st : {RunStatus::Queued, RunStatus::Running, RunStatus::Completed, RunStatus::Failed,
                  RunStatus::Interrupted})
    if (s == status_name(st)) return st;
  throw StoreError(fmt::format("unknown run status '{}' (expected QUEUED, RUNNING, COMPLETED, FAILED or "
                               "INTERRUPTED)", s));
}

Store::Store(const std::string& path, bool read_only) : path_(path), read_only_(read_only) {
  const bool in_memory = path == ":memory:";
  if (!in_memory) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) throw StoreError(fmt::format("{} is a directory, not a database file", path));
    const bool exists = fs::exists(path, ec);
    if (read_only && !exists) throw StoreError(fmt::format("database {} does not exist", path));
    if (!read_only) {
      fs::path dir = fs::path(path).parent_path();
      if (dir.empty()) dir = ".";
      if (!fs::exists(dir, ec)) {
        fs::create_directories(dir, ec);
        if (ec) throw StoreError(fmt::format("cannot create directory {} for database {}: {}", dir.string(), path,
                                             ec.message()));
      }
      // SQLite in WAL mode creates PATH-wal and PATH-shm beside the file, so the directory must be writable.
      if (::access(dir.c_str(), W_OK) != 0)
        throw StoreError(fmt::format("cannot write database {}: its directory {} is read-only", path, dir.string()));
      if (exists && ::access(path.c_str(), W_OK) != 0)
        throw StoreError(fmt::format("cannot write database {}: the file is read-only", path));
    }
  }
  // Read-only opens leave the files as they are: while a writer has the database open (its -wal file exists and
  // the directory is writable) through SQLite's shared-memory index, read-only; otherwise as an immutable file,
  // which creates no -wal or -shm beside it (also on read-only media).
  std::string target = path;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  if (read_only && !in_memory) {
    std::error_code ec;
    const fs::path dir = fs::absolute(path, ec).parent_path();
    const bool writer_active = fs::exists(path + "-wal", ec) && ::access(dir.c_str(), W_OK) == 0;
    target = "file:" + uri_path(fs::absolute(path, ec).string()) + (writer_active ? "?mode=ro" : "?immutable=1");
    flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_URI;
  }
  const int rc = sqlite3_open_v2(target.c_str(), &db_, flags, nullptr);
  try {
    if (rc != SQLITE_OK) detail::fail(db_, rc, path_, "opening");
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, busy_timeout_seconds() * 1000);
    if (!read_only && sqlite3_db_readonly(db_, "main") == 1)
      throw StoreError(fmt::format("cannot write database {}: the file or its directory is read-only", path));
    // Reading the header first: a corrupt file or a newer schema is refused before anything is written.
    // Version and table count from one statement, one snapshot: another process may be creating the schema.
    int version = 0;
    int64_t tables = 0;
    {
      Statement s(db_, path_,
                  "SELECT (SELECT user_version FROM pragma_user_version), "
                  "(SELECT count(*) FROM sqlite_master WHERE type = 'table')");
      if (s.step()) {
        version = static_cast<int>(s.integer(0));
        tables = s.integer(1);
      }
    }
    if (version > kSchemaVersion)
      throw StoreError(fmt::format("database {} has schema version {}, newer than this dmdbench ({}); use a newer "
                                   "dmdbench", path, version, kSchemaVersion));
    if (read_only) {
      if (version < kSchemaVersion)
        throw StoreError(fmt::format("database {} has schema version {}, older than this dmdbench ({}); open it "
                                     "once for writing to migrate it", path, version, kSchemaVersion));
      return;
    }
    if (version == 0 && tables > 0)
      throw StoreError(fmt::format("{} is an SQLite database but not a dmdbench one (it has tables and no schema "
                                   "version); the file was left unchanged", path_));
    enable_wal(db_, path_);
    detail::exec(db_, path_, "PRAGMA synchronous = NORMAL");
    if (version < kSchemaVersion) migrate(version);
  } catch (...) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

Store::~Store() { sqlite3_close_v2(db_); }

int Store::schema_version() const {
  std::lock_guard lock(mu_);
  return user_version(db_, path_);
}

void Store::migrate(int /*from_version*/) {
  Transaction tx(db_, path_);
  // Re-read under the write lock: another process may have migrated meanwhile.
  const int current = user_version(db_, path_);
  if (current > kSchemaVersion)
    throw StoreError(fmt::format("database {} has schema version {}, newer than this dmdbench ({}); use a newer "
                                 "dmdbench", path_, current, kSchemaVersion));
  for (const auto& m : detail::migrations()) {
    if (m.version <= current) continue;
    for (const char* sql : m.statements) detail::exec(db_, path_, sql);
    // Provenance columns added after the first schema come from the field list.
    for (const auto& f : provenance_fields())
      if (f.since_schema == m.version && m.version > 1)
        for (const char* table : {"run", "bench"})
          detail::exec(db_, path_, fmt::format("ALTER TABLE {} ADD COLUMN {} {}", table, f.column,
                                               std::holds_alternative<std::string Provenance::*>(f.member)
                                                   ? "TEXT NOT NULL DEFAULT ''"
                                                   : "INTEGER NOT NULL DEFAULT 0"));
    Statement v(db_, path_, "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)");
    v.bind_all(m.version, utc_now()).run();
    // PRAGMA takes no parameters; the value is a compile-time constant, not data.
    detail::exec(db_, path_, fmt::format("PRAGMA user_version = {}", m.version));
  }
  tx.commit();
}

void Store::add_experiment(const ExperimentRow& e) {
  std::lock_guard lock(mu_);
  Transaction tx(db_, path_);
  Statement s(db_, path_,
              "INSERT OR IGNORE INTO experiment (id, created_at, command, description) VALUES (?, ?, ?, ?)");
  s.bind_all(e.id, e.created_at.empty() ? utc_now() : e.created_at, e.command, e.description).run();
  tx.commit();
}

std::optional<ExperimentRow> Store::latest_experiment() const {
  std::lock_guard lock(mu_);
  // The most recently active experiment: created, or a run of it started (a resumed sweep counts as latest).
  Statement s(db_, path_,
              "SELECT id, created_at, command, description, max(created_at, coalesce((SELECT max(started_at) FROM "
              "run WHERE run.experiment_id = experiment.id), '')) AS active FROM experiment "
              "ORDER BY active DESC, rowid DESC LIMIT 1");
  if (s.step()) return ExperimentRow{s.text(0), s.text(1), s.text(2), s.text(3)};
  // Runs written without an experiment row still name one.
  Statement r(db_, path_, "SELECT experiment_id, started_at FROM run ORDER BY started_at DESC, rowid DESC LIMIT 1");
  if (r.step()) return ExperimentRow{r.text(0), r.text(1), "", ""};
  return std::nullopt;
}

std::vector<ExperimentRow> Store::experiments() const {
  std::lock_guard lock(mu_);
  Statement s(db_, path_, "SELECT id, created_at, command, description FROM experiment ORDER BY created_at, rowid");
  std::vector<ExperimentRow> out;
  while (s.step()) out.push_back({s.text(0), s.text(1), s.text(2), s.text(3)});
  return out;
}

std::optional<RunRow> Store::find_run(const std::string& run_id) const {
  std::lock_guard lock(mu_);
  Statement s(db_, path_, ("SELECT " + run_columns() + " FROM run WHERE run_id = ?").c_str());
  s.bind(1, run_id);
  if (!s.step()) return std::nullopt;
  return read_run(s);
}

int Store::queue_runs(const std::vector<RunSpec>& specs) {
  std::lock_guard lock(mu_);
  Transaction tx(db_, path_);
  Statement s(db_, path_,
              "INSERT OR IGNORE INTO run (run_id, experiment_id, variant, dataset, profile, seed, plan_index, status, "
              "config_json) VALUES (?, ?, ?, ?, ?, ?, ?, 'QUEUED', ?)");
  int added = 0;
  for (const auto& r : specs) {
    s.bind_all(r.run_id, r.experiment_id, r.variant, r.dataset, r.profile, r.seed, r.plan_index, r.config_json);
    s.run();
    added += sqlite3_changes(db_);
    s.reset();
  }
  tx.commit();
  return added;
}

// The row of a run that starts now (its earlier child rows removed): RUNNING, no error yet ('' ), no wall time (0),
// no best epoch (-1), with its owner and claim count. One statement for start_run and claim_run.
static void write_running_row(sqlite3* db, const std::string& path, const RunSpec& spec, const Provenance& prov,
                       const std::string& owner, int attempts) {
  delete_children(db, path, spec.run_id);
  const std::string now = utc_now();
  static const std::string sql = "INSERT OR REPLACE INTO run (" + run_columns() +
                                 ") VALUES (?, ?, ?, ?, ?, ?, ?, 'RUNNING', ?, '', ?, " +
                                 placeholders(provenance_fields().size()) + ", ?, '', 0, -1, ?, ?)";
  Statement s(db, path, sql.c_str());
  s.bind_all(spec.run_id, spec.experiment_id, spec.variant, spec.dataset, spec.profile, spec.seed,
             spec.plan_index, now, spec.config_json);
  const int next = bind_provenance(s, 10, prov);
  s.bind_all_from(next, now, owner, attempts);
  s.run();
}

void Store::start_run(const RunSpec& spec, const Provenance& prov) {
  std::lock_guard lock(mu_);
  Transaction tx(db_, path_);
  if (status_of(db_, path_, spec.run_id) == RunStatus::Completed)
    throw StoreError(fmt::format("run {} in database {} is already completed; delete it to run it again",
                                 spec.run_id, path_));
  write_running_row(db_, path_, spec, prov, "", 1);
  tx.commit();
}

ClaimResult Store::claim_run(const RunSpec& spec, const std::string& owner, bool redo_completed,
                             const std::string& stale_owner) {
  std::lock_guard lock(mu_);
  Transaction tx(db_, path_);  // BEGIN IMMEDIATE: the write lock is held from the read to the write
  ClaimResult r;
  int attempts = 0;
  {
    Statement s(db_, path_, "SELECT status, owner, attempts FROM run WHERE run_id = ?");
    s.bind(1, spec.run_id);
    if (s.step()) {
      r.status = parse_status(s.text(0));
      r.owner = s.text(1);
      attempts = static_cast<int>(s.integer(2));
    }
  }
  const bool free = r.status == RunStatus::Queued || r.status == RunStatus::Failed ||
                    r.status == RunStatus::Interrupted || (r.status == RunStatus::Completed && redo_completed) ||
                    (r.status == RunStatus::Running && !stale_owner.empty() && r.owner == stale_owner);
  if (!free) return r;  // rolled back; nothing written
  write_running_row(db_, path_, spec, Provenance{}, owner, attempts + 1);
  tx.commit();
  r.claimed = true;
  r.owner = owner;
  return r;
}

bool Store::reclaim_run(const std::string& run_id, const std::string& owner, const std::string& reason) {
  std::lock_guard lock(mu_);
  Transaction tx(db_, path_);
  Statement s(db_, path_,
              "UPDATE run SET status = 'INTERRUPTED', error = ?, finished_at = ? WHERE run_id = ? AND "
              "status = 'RUNNING' AND owner = ?");
  s.bind_all(reason, utc_now(), run_id, owner).run();
  const bool changed = sqlite3_changes(db_) > 0;
  tx.commit();
  return changed;
}

void Store::set_provenance(const std::string& run_id, const Provenance& prov, const std::string& owner) {
  std::lock_guard lock(mu_);
  Transaction tx(db_, path_);
  require_owner(db_, path_, run_id, owner);
  std::string sets;
  for (const auto& f : provenance_fields()) sets += std::string(sets.empty() ? "" : ", ") + f.column + " = ?";
  const std::string sql = "UPDATE run SET " + sets + " WHERE run_id = ?";
  Statement s(db_, path_, sql.c_str());
  s.bind(bind_provenance(s, 1, prov), run_id);
  s.run();
  tx.commit();
}

void Store::heartbeat(const std::string& run_id, const std::string& owner) {
  std::lock_guard lock(mu_);
  Transaction tx(db_, path_);
  require_status(db_, path_, run_id);
  require_owner(db_, path_, run_id, owner);
  Statement s(db_, path_, "UPDATE run SET heartbeat_at = ? WHERE run_id = ? AND status = 'RUNNING'");
  s.bind_all(utc_now(), run_id).run();
  tx.commit();
}

void Store::add_epoch(const std::string& run_id, const EpochRow& e, const std::vector<MetricRow>& valid_metrics,
                      const std::string& owner) {
  std::lock_guard lock(mu_);
  Transaction tx(db_, path_);
  const RunStatus st = require_status(db_, path_, run_id);
  require_owner(db_, path_, run_id, owner);
  if (st != RunStatus::Running)
    throw StoreError(fmt::format("run {} is {}, not RUNNING; epoch {} was not stored", run_id, status_name(st),
                                 e.epoch));
  Statement s(db_, path_,
              "INSERT OR REPLACE INTO epoch (run_id, epoch, train_loss, valid_loss, lr, seconds, grad_norm) "
              "VALUES (?, ?, ?, ?, ?, ?, ?)");
  s.bind_all(run_id, e.epoch, e.train_loss, e.valid_loss, e.lr, e.seconds, e.grad_norm).run();
  insert_metrics(db_, path_, run_id, valid_metrics, "valid", e.epoch);
  Statement h(db_, path_, "UPDATE run SET heartbeat_at = ? WHERE run_id = ?");
  h.bind_all(utc_now(), run_id).run();
  tx.commit();
}

void Store::complete_run(const std::string& run_id, int best_epoch, double wall_seconds,
                         const std::vector<MetricRow>& metrics, const std::vector<ThroughputRow>& throughput,
                         const std::vector<EdgeRow>& edges, const std::string& owner,
                         const std::vector<BatchOrderRow>& batch_orders) {
  std::lock_guard lock(mu_);
  Transaction tx(db_, path_);
  const RunStatus st = require_status(db_, path_, run_id);
  require_owner(db_, path_, run_id, owner);
  if (st != RunStatus::Running)
    throw StoreError(fmt::format("run {} is {}, not RUNNING; it cannot be completed", run_id, status_name(st)));
  insert_metrics(db_, path_, run_id, metrics, "test", -1);
  Statement t(db_, path_,
              "INSERT OR REPLACE INTO throughput (run_id, phase, batch_size, samples_per_s, latency_p50_ms, "
              "latency_p95_ms, peak_memory_bytes, parameters, device, threads) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  for (const auto& r : throughput) {
    t.bind_all(run_id, r.phase, r.batch_size, r.samples_per_s, r.latency_p50_ms, r.latency_p95_ms,
               r.peak_memory_bytes, r.parameters, r.device, r.threads);
    t.run();
    t.reset();
  }
  Statement g(db_, path_,
              "INSERT OR REPLACE INTO edge (run_id, space, from_modality, to_modality, weight) VALUES (?, ?, ?, ?, ?)");
  for (const auto& r : edges) {
    g.bind_all(run_id, r.space, r.from, r.to, r.weight);
    g.run();
    g.reset();
  }
  Statement o(db_, path_, "INSERT OR REPLACE INTO batch_order (run_id, split, seed) VALUES (?, ?, ?)");
  for (const auto& r : batch_orders) {
    o.bind_all(run_id, r.split, std::to_string(r.seed));
    o.run();
    o.reset();
  }
  const std::string now = utc_now();
  Statement u(db_, path_,
              "UPDATE run SET status = 'COMPLETED', best_epoch = ?, wall_seconds = ?, finished_at = ?, "
              "heartbeat_at = ?, error = '' WHERE run_id = ?");
  u.bind_all(best_epoch, wall_seconds, now, now, run_id).run();
  tx.commit();
}

void Store::fail_run(const std::string& run_id, const std::string& error, const std::string& owner,
                     RunStatus status) {
  std::lock_guard lock(mu_);
  Transaction tx(db_, path_);
  if (require_status(db_, path_, run_id) == RunStatus::Completed)
    throw StoreError(fmt::format("run {} is COMPLETED; it cannot be marked failed", run_id));
  require_owner(db_, path_, run_id, owner);
  const std::string now = utc_now();
  Statement u(db_, path_,
              "UPDATE run SET status = ?, error = ?, finished_at = ?, heartbeat_at = ?, wall_seconds = "
              "CASE WHEN started_at = '' THEN 0 ELSE (julianday(?) - julianday(started_at)) * 86400.0 END "
              "WHERE run_id = ?");
  u.bind_all(status_name(status == RunStatus::Interrupted ? status : RunStatus::Failed), error, now, now, now,
             run_id)
      .run();
  tx.commit();
}

bool Store::delete_run(const std::string& run_id) {
  std::lock_guard lock(mu_);
  Transaction tx(db_, path_);
  delete_children(db_, path_, run_id);
  Statement s(db_, path_, "DELETE FROM run WHERE run_id = ?");
  s.bind(1, run_id).run();
  const bool found = sqlite3_changes(db_) > 0;
  tx.commit();
  return found;
}

int Store::mark_stale_interrupted(double max_age_s) {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::system_clock::now();
  const auto cutoff = now - std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                std::chrono::duration<double>(max_age_s));
  Transaction tx(db_, path_);
  Statement s(db_, path_,
              "UPDATE run SET status = 'INTERRUPTED', error = ? WHERE status = 'RUNNING' AND heartbeat_at < ?");
  s.bind_all(fmt::format("no heartbeat for more than {} s; marked interrupted at {}", max_age_s, utc_time(now)),
             utc_time(cutoff));
  s.run();
  const int n = sqlite3_changes(db_);
  tx.commit();
  return n;
}

std::vector<RunRow> Store::runs(const std::string& experiment_id) const {
  std::lock_guard lock(mu_);
  static const std::string sql = "SELECT " + run_columns() + " FROM run WHERE ?1 = '' OR experiment_id = ?1 "
                                 "ORDER BY experiment_id, plan_index, variant, dataset, seed, run_id";
  Statement s(db_, path_, sql.c_str());
  s.bind(1, experiment_id);
  std::vector<RunRow> out;
  while (s.step()) out.push_back(read_run(s));
  return out;
}

// The rows of one run that `sql` selects (its one parameter is the run id), each built by make(statement).
template <typename Make>
auto rows_of_run(sqlite3* db, const std::string& path, const char* sql, const std::string& run_id,
                 Make make) {
  Statement s(db, path, sql);
  s.bind(1, run_id);
  std::vector<decltype(make(s))> out;
  while (s.step()) out.push_back(make(s));
  return out;
}

std::vector<MetricRow> Store::metrics(const std::string& run_id) const {
  std::lock_guard lock(mu_);
  return rows_of_run(
      db_, path_, "SELECT split, name, value, epoch FROM metric WHERE run_id = ? ORDER BY split, epoch, name",
      run_id, [](Statement& s) {
        return MetricRow{s.text(0), s.text(1), s.real(2), static_cast<int>(s.integer(3))};
      });
}

std::vector<EpochRow> Store::epochs(const std::string& run_id) const {
  std::lock_guard lock(mu_);
  return rows_of_run(
      db_, path_,
      "SELECT epoch, train_loss, valid_loss, lr, seconds, grad_norm FROM epoch WHERE run_id = ? ORDER BY "
      "epoch",
      run_id, [](Statement& s) {
        return EpochRow{
            static_cast<int>(s.integer(0)), s.real(1), s.real(2), s.real(3), s.real(4), s.real(5)};
      });
}

std::vector<ThroughputRow> Store::throughput(const std::string& run_id) const {
  std::lock_guard lock(mu_);
  return rows_of_run(db_, path_,
                     "SELECT phase, batch_size, samples_per_s, latency_p50_ms, latency_p95_ms, "
                     "peak_memory_bytes, parameters, "
                     "device, threads FROM throughput WHERE run_id = ? ORDER BY phase DESC, batch_size",
                     run_id, [](Statement& s) {
                       return ThroughputRow{s.text(0),    s.integer(1), s.real(2),
                                            s.real(3),    s.real(4),    s.integer(5),
                                            s.integer(6), s.text(7),    static_cast<int>(s.integer(8))};
                     });
}

std::vector<EdgeRow> Store::edges(const std::string& run_id) const {
  std::lock_guard lock(mu_);
  return rows_of_run(
      db_, path_,
      "SELECT space, from_modality, to_modality, weight FROM edge WHERE run_id = ? ORDER BY space, "
      "from_modality, to_modality",
      run_id, [](Statement& s) {
        return EdgeRow{s.text(0), s.text(1), s.text(2), s.real(3)};
      });
}

void Store::add_robustness(const std::string& run_id, const std::vector<RobustnessRow>& rows,
                           const std::string& owner) {
  std::lock_guard lock(mu_);
  Transaction tx(db_, path_);
  const RunStatus st = require_status(db_, path_, run_id);
  if (st != RunStatus::Completed) {
    require_owner(db_, path_, run_id, owner);
    if (st != RunStatus::Running)
      throw StoreError(fmt::format("run {} is {}, neither RUNNING nor COMPLETED; its robustness rows were not stored",
                                   run_id, status_name(st)));
  }
  Statement s(db_, path_,
              "INSERT OR IGNORE INTO robustness (run_id, perturbation, level, metric, value) VALUES (?, ?, ?, ?, ?)");
  for (const auto& r : rows) {
    s.bind_all(run_id, r.perturbation, r.level, r.metric, r.value);
    s.run();
    s.reset();
  }
  tx.commit();
}

std::vector<RobustnessRow> Store::robustness(const std::string& run_id) const {
  std::lock_guard lock(mu_);
  return rows_of_run(db_, path_,
                     "SELECT perturbation, level, metric, value FROM robustness WHERE run_id = ? ORDER BY "
                     "perturbation, level, "
                     "metric",
                     run_id, [](Statement& s) {
                       return RobustnessRow{s.text(0), s.real(1), s.text(2), s.real(3)};
                     });
}

void Store::set_checkpoint(const std::string& run_id, const CheckpointRow& c, const std::string& owner) {
  std::lock_guard lock(mu_);
  Transaction tx(db_, path_);
  require_status(db_, path_, run_id);
  require_owner(db_, path_, run_id, owner);
  Statement s(db_, path_,
              "INSERT OR REPLACE INTO checkpoint (run_id, path, sha256, bytes, created_at) VALUES (?, ?, ?, ?, ?)");
  s.bind_all(run_id, c.path, c.sha256, c.bytes, c.created_at.empty() ? utc_now() : c.created_at).run();
  tx.commit();
}

std::optional<CheckpointRow> Store::checkpoint(const std::string& run_id) const {
  std::lock_guard lock(mu_);
  Statement s(db_, path_, "SELECT path, sha256, bytes, created_at FROM checkpoint WHERE run_id = ?");
  s.bind(1, run_id);
  if (!s.step()) return std::nullopt;
  return CheckpointRow{s.text(0), s.text(1), s.integer(2), s.text(3)};
}

std::vector<BatchOrderRow> Store::batch_orders(const std::string& run_id) const {
  std::lock_guard lock(mu_);
  return rows_of_run(db_, path_, "SELECT split, seed FROM batch_order WHERE run_id = ? ORDER BY split",
                     run_id, [](Statement& s) {
                       return BatchOrderRow{s.text(0), std::stoull(s.text(1))};
                     });
}

void Store::add_bench(const std::vector<BenchRow>& rows) {
  std::lock_guard lock(mu_);
  Transaction tx(db_, path_);
  static const std::string sql = "INSERT OR REPLACE INTO bench (" + bench_columns() + ") VALUES (" +
                                 placeholders_for(bench_columns()) + ")";
  Statement s(db_, path_, sql.c_str());
  const std::string now = utc_now();
  for (const auto& b : rows) {
    s.bind_all(b.bench_set, b.name, b.median_ns, b.p95_ns, b.samples_per_s, b.repetitions,
               b.peak_memory_bytes, b.flops_per_sample, b.product_flops_per_sample, b.product_ms_per_sample,
               b.mm_gflops);
    s.bind(bind_provenance(s, kBenchOwn + 1, b.prov), now);  // parameters count from 1
    s.run();
    s.reset();
  }
  tx.commit();
}

std::vector<BenchRow> Store::bench(const std::string& bench_set) const {
  std::lock_guard lock(mu_);
  std::string set = bench_set;
  if (set.empty()) {
    Statement latest(db_, path_, "SELECT bench_set FROM bench ORDER BY created_at DESC, rowid DESC LIMIT 1");
    if (!latest.step()) return {};
    set = latest.text(0);
  }
  static const std::string sql = "SELECT " + bench_columns() + " FROM bench WHERE bench_set = ? ORDER BY rowid";
  Statement s(db_, path_, sql.c_str());
  s.bind(1, set);
  std::vector<BenchRow> out;
  while (s.step()) {
    BenchRow b;
    b.bench_set = s.text(0);
    b.name = s.text(1);
    b.median_ns = s.real(2);
    b.p95_ns = s.real(3);
    b.samples_per_s = s.real(4);
    b.repetitions = static_cast<int>(s.integer(5));
    b.peak_memory_bytes = s.integer(6);
    b.flops_per_sample = s.real(7);
    b.product_flops_per_sample = s.real(8);
    b.product_ms_per_sample = s.real(9);
    b.mm_gflops = s.real(10);
    b.prov = read_provenance(s, kBenchOwn);  // columns count from 0
    out.push_back(std::move(b));
  }
  return out;
}

std::vector<std::string> Store::bench_sets() const {
  std::lock_guard lock(mu_);
  Statement s(db_, path_,
              "SELECT bench_set FROM bench GROUP BY bench_set ORDER BY MIN(created_at), MIN(rowid)");
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text(0));
  return out;
}

MergeResult Store::merge_from(const std::string& other_path) {
  std::error_code ec;
  if (!fs::exists(other_path, ec)) throw StoreError(fmt::format("database {} does not exist", other_path));
  if (fs::equivalent(other_path, path_, ec))
    throw StoreError(fmt::format("cannot merge database {} into itself", path_));
  { Store check(other_path, /*read_only=*/true); }  // refuses a corrupt, newer or older file with its own message

  std::lock_guard lock(mu_);
  {
    Statement attach(db_, path_, "ATTACH DATABASE ? AS src");
    attach.bind(1, other_path).run();
  }
  struct Detach {
    sqlite3* db;
    ~Detach() { sqlite3_exec(db, "DETACH DATABASE src", nullptr, nullptr, nullptr); }
  } detach{db_};

  MergeResult result;
  Transaction tx(db_, path_);
  detail::exec(db_, path_,
               "CREATE TEMP TABLE IF NOT EXISTS merge_ids (run_id TEXT PRIMARY KEY, replaced INTEGER NOT NULL)");
  detail::exec(db_, path_, "DELETE FROM temp.merge_ids");
  // New run ids, and runs that are completed only in the other database (completed beats non-completed).
  detail::exec(db_, path_,
               "INSERT INTO temp.merge_ids SELECT s.run_id, m.run_id IS NOT NULL FROM src.run s "
               "LEFT JOIN main.run m ON m.run_id = s.run_id "
               "WHERE m.run_id IS NULL OR (m.status <> 'COMPLETED' AND s.status = 'COMPLETED')");
  result.runs_added = scalar(db_, path_, "SELECT count(*) FROM temp.merge_ids WHERE NOT replaced");
  result.runs_replaced = scalar(db_, path_, "SELECT count(*) FROM temp.merge_ids WHERE replaced");
  for (const char* table : kChildTables) {
    detail::exec(db_, path_, fmt::format("DELETE FROM main.{0} WHERE run_id IN (SELECT run_id FROM temp.merge_ids)",
                                         table));
    detail::exec(db_, path_, fmt::format("INSERT OR IGNORE INTO main.{0} SELECT * FROM src.{0} WHERE run_id IN "
                                         "(SELECT run_id FROM temp.merge_ids)", table));
  }
  detail::exec(db_, path_, "DELETE FROM main.run WHERE run_id IN (SELECT run_id FROM temp.merge_ids WHERE replaced)");
  detail::exec(db_, path_,
               "INSERT INTO main.run (" + run_columns() + ") SELECT " + run_columns() + " FROM src.run "
               "WHERE run_id IN (SELECT run_id FROM temp.merge_ids)");
  detail::exec(db_, path_,
               "INSERT OR IGNORE INTO main.experiment (id, created_at, command, description) "
               "SELECT id, created_at, command, description FROM src.experiment");
  result.experiments_added = sqlite3_changes(db_);
  detail::exec(db_, path_,
               "INSERT OR IGNORE INTO main.bench (" + bench_columns() + ") SELECT " + bench_columns() + " FROM src.bench");
  result.bench_rows_added = sqlite3_changes(db_);
  detail::exec(db_, path_, "DROP TABLE temp.merge_ids");
  tx.commit();
  return result;
}

std::vector<std::pair<std::string, int64_t>> Store::table_counts() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, int64_t>> out;
  for (const char* table : {"experiment", "run", "metric", "epoch", "throughput", "edge", "batch_order", "robustness", "checkpoint", "bench"}) {
    const std::string sql = fmt::format("SELECT count(*) FROM {}", table);
    out.emplace_back(table, scalar(db_, path_, sql.c_str()));
  }
  return out;
}

}  // namespace dmdbench::results
