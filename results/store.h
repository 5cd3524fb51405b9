// The SQLite results store (no LibTorch). Long-format tables: experiment, run, metric, epoch, throughput,
// edge weights, benchmark. WAL mode, a busy timeout, one transaction per state change, prepared statements,
// a schema version with forward migrations; a database from a newer schema is refused.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "results/provenance.h"
#include "results/robustness.h"

struct sqlite3;

namespace dmdbench::results {

struct StoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr int kSchemaVersion = 7;
// How long a statement waits for another process's lock before it fails: 30 s, or DMDBENCH_BUSY_TIMEOUT_S.
int busy_timeout_seconds();

struct RunSpec {
  std::string run_id;        // stable hash of resolved config, seed and code version
  std::string experiment_id;
  std::string variant, dataset, profile;
  int64_t seed = 0;
  int plan_index = 0;
  std::string config_json;   // the resolved configuration
};

enum class RunStatus { Queued, Running, Completed, Failed, Interrupted };
const char* status_name(RunStatus s);
RunStatus parse_status(const std::string& s);

struct RunRow {
  RunSpec spec;
  RunStatus status = RunStatus::Queued;
  std::string error;
  Provenance prov;
  std::string started_at, finished_at, heartbeat_at;
  double wall_seconds = 0;
  int best_epoch = -1;
  std::string owner;  // who claimed it last (an opaque token; "" for runs started without a claim)
  int attempts = 0;   // how many times it was claimed
};

// What claim_run found.
struct ClaimResult {
  bool claimed = false;
  RunStatus status = RunStatus::Queued;  // the row's status before the claim (Queued when there was no row)
  std::string owner;                     // not claimed: the owner of the RUNNING row that holds it
};

// A write by a process that no longer owns the run (another process reclaimed it): nothing was written.
struct OwnershipLost : StoreError {
  using StoreError::StoreError;
};

struct MetricRow {
  std::string split;  // "test" | "valid" | "train" | "test_shuffle_<i>" (the test split in another batch order)
  std::string name;   // a name of metric_defs() (results/metrics.h)
  double value = 0;
  int epoch = -1;     // -1 for final (best-epoch) test metrics
};

struct EpochRow {
  int epoch = 0;
  double train_loss = 0, valid_loss = 0, lr = 0, seconds = 0;
  double grad_norm = 0;  // L2 norm of the last accumulated gradient before clipping (diagnostic)
};

struct ThroughputRow {
  std::string phase;   // "train" | "eval"
  int64_t batch_size = 0;
  double samples_per_s = 0, latency_p50_ms = 0, latency_p95_ms = 0;
  int64_t peak_memory_bytes = 0, parameters = 0;
  std::string device;
  int threads = 1;
};

struct EdgeRow {
  std::string space;   // "homo" | "hetero"
  std::string from, to;  // "l" | "v" | "a" (teacher -> student)
  double weight = 0;     // mean over the test split
};

// The best weights of a run, kept for later evaluations (`dmdbench robustness`): a torch.save zip beside the
// database (path relative to the database's directory) and its SHA-256.
struct CheckpointRow {
  std::string path, sha256;
  int64_t bytes = 0;
  std::string created_at;
};

// The batch order of one evaluation pass: its split's name as in MetricRow and its generator's seed.
struct BatchOrderRow {
  std::string split;  // "test" | "test_shuffle_<i>"
  uint64_t seed = 0;
};

struct BenchRow {
  std::string bench_set;   // id of one `dmdbench bench` invocation
  std::string name;        // Google Benchmark case name
  double median_ns = 0, p95_ns = 0, samples_per_s = 0;
  int repetitions = 0;
  int64_t peak_memory_bytes = 0;
  Provenance prov;
  // The distance to the machine (0 when not measured), per sample: FLOPs (matrix products and the attention's
  // products; the products alone) and the profiled time inside the products; and LibTorch's 512^3 product
  // rate (GFLOP/s) at the case's thread count.
  double flops_per_sample = 0, product_flops_per_sample = 0, product_ms_per_sample = 0, mm_gflops = 0;
};

struct ExperimentRow {
  std::string id, created_at, command, description;  // created_at: filled with the current UTC time when empty
};

// What merge_from copied.
struct MergeResult {
  int64_t runs_added = 0;      // run ids new to this database
  int64_t runs_replaced = 0;   // non-completed here, completed in the other database
  int64_t experiments_added = 0, bench_rows_added = 0;
};

// Timestamps are UTC ISO-8601 with milliseconds ("2025-01-31T12:00:00.123Z"); they sort as text.
std::string utc_now();
// Seconds from such a timestamp to now (a very large number for "" or unreadable text).
double seconds_since(const std::string& utc);

class Store {
 public:
  // Opens (creating if needed) and migrates. Refuses a newer schema, a corrupt file, or an unwritable path
  // with a StoreError whose message names the path.
  explicit Store(const std::string& path, bool read_only = false);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  const std::string& path() const { return path_; }
  int schema_version() const;

  void add_experiment(const ExperimentRow& e);                 // idempotent on id
  // The experiment created or with a run started most recently (so a resumed sweep is the latest).
  std::optional<ExperimentRow> latest_experiment() const;
  std::vector<ExperimentRow> experiments() const;

  // Run lifecycle, one transaction each.
  std::optional<RunRow> find_run(const std::string& run_id) const;
  // Inserts QUEUED rows for the specs not yet in the database (one transaction); returns how many were new.
  int queue_runs(const std::vector<RunSpec>& specs);
  // RUNNING; replaces a non-completed row and its children in the same transaction. A COMPLETED run is
  // refused (delete_run first to redo it).
  void start_run(const RunSpec& spec, const Provenance& prov);
  // The one way a sweep takes a run: in one transaction, succeeds for exactly one process. A run is claimable
  // when it has no row or its row is QUEUED, FAILED or INTERRUPTED (with `redo_completed`, COMPLETED too); a
  // RUNNING row only when `stale_owner` is its owner (the caller established that owner is gone). The claimed
  // row is RUNNING with `owner`, its children deleted, attempts + 1.
  ClaimResult claim_run(const RunSpec& spec, const std::string& owner, bool redo_completed = false,
                        const std::string& stale_owner = "");
  // A RUNNING row whose owner is gone becomes INTERRUPTED with `reason`, if its owner is still `owner` (one
  // transaction; false when someone else changed it meanwhile).
  bool reclaim_run(const std::string& run_id, const std::string& owner, const std::string& reason);
  // Writes on behalf of an owner: with a non-empty `owner`, OwnershipLost unless the row is still its own.
  void set_provenance(const std::string& run_id, const Provenance& prov, const std::string& owner);
  void heartbeat(const std::string& run_id, const std::string& owner = "");  // RUNNING runs only
  // The epoch row and its validation metrics (stored with split "valid" and this epoch); refreshes the heartbeat.
  void add_epoch(const std::string& run_id, const EpochRow& e, const std::vector<MetricRow>& valid_metrics,
                 const std::string& owner = "");
  // Completes a run atomically: final metrics, throughput, edges, the test passes' batch orders, best epoch, wall
  // time, status COMPLETED. A metric that is undefined (NaN, e.g. Corr of constant predictions) is not stored.
  void complete_run(const std::string& run_id, int best_epoch, double wall_seconds,
                    const std::vector<MetricRow>& metrics, const std::vector<ThroughputRow>& throughput,
                    const std::vector<EdgeRow>& edges, const std::string& owner = "",
                    const std::vector<BatchOrderRow>& batch_orders = {});
  // Robustness rows (one transaction, INSERT OR IGNORE: a (perturbation, level, metric) present stays as it is).
  // A RUNNING run only under its owner (the sweep stores them before completing the run); a COMPLETED run from
  // `dmdbench robustness`.
  void add_robustness(const std::string& run_id, const std::vector<RobustnessRow>& rows, const std::string& owner = "");
  std::vector<RobustnessRow> robustness(const std::string& run_id) const;  // by perturbation, level, metric
  void set_checkpoint(const std::string& run_id, const CheckpointRow& c, const std::string& owner = "");
  std::optional<CheckpointRow> checkpoint(const std::string& run_id) const;
  // Any status but COMPLETED; `status` FAILED or INTERRUPTED.
  void fail_run(const std::string& run_id, const std::string& error, const std::string& owner = "",
                RunStatus status = RunStatus::Failed);
  // Removes a run and all its rows; returns false when there was no such run.
  bool delete_run(const std::string& run_id);
  // Marks RUNNING runs whose heartbeat is older than max_age_s as INTERRUPTED; returns how many.
  int mark_stale_interrupted(double max_age_s);

  // Queries used by ls, reports and the gate.
  std::vector<RunRow> runs(const std::string& experiment_id = "") const;  // all experiments when empty
  std::vector<MetricRow> metrics(const std::string& run_id) const;
  std::vector<EpochRow> epochs(const std::string& run_id) const;
  std::vector<ThroughputRow> throughput(const std::string& run_id) const;
  std::vector<EdgeRow> edges(const std::string& run_id) const;
  std::vector<BatchOrderRow> batch_orders(const std::string& run_id) const;

  void add_bench(const std::vector<BenchRow>& rows);            // one transaction
  std::vector<BenchRow> bench(const std::string& bench_set = "") const;  // latest set when empty
  std::vector<std::string> bench_sets() const;

  // Copy every row of other databases into this one; idempotent (run ids and bench keys are unique).
  // A run present in both keeps this database's row, unless only the other one is COMPLETED.
  MergeResult merge_from(const std::string& other_path);

  // Row count per table (experiment, run, metric, epoch, throughput, edge, batch_order, robustness, checkpoint,
  // bench), in that order.
  std::vector<std::pair<std::string, int64_t>> table_counts() const;

  // The raw connection, for tests and diagnostics only.
  sqlite3* native_handle() const { return db_; }

 private:
  void migrate(int from_version);
  std::string path_;
  bool read_only_ = false;
  sqlite3* db_ = nullptr;
  mutable std::mutex mu_;  // one connection shared by threads: serialise statements and transactions
};

}  // namespace dmdbench::results
