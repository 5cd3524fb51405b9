#include "results/schema.h"

namespace dmdbench::results::detail {

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> all = {
      {1,
       {
           R"(CREATE TABLE schema_version (
                version INTEGER PRIMARY KEY,
                applied_at TEXT NOT NULL))",
           R"(CREATE TABLE experiment (
                id TEXT PRIMARY KEY,
                created_at TEXT NOT NULL,
                command TEXT NOT NULL DEFAULT '',
                description TEXT NOT NULL DEFAULT ''))",
           R"(CREATE TABLE run (
                run_id TEXT PRIMARY KEY,
                experiment_id TEXT NOT NULL,
                variant TEXT NOT NULL,
                dataset TEXT NOT NULL,
                profile TEXT NOT NULL,
                seed INTEGER NOT NULL,
                plan_index INTEGER NOT NULL DEFAULT 0,
                status TEXT NOT NULL CHECK (status IN ('QUEUED','RUNNING','COMPLETED','FAILED','INTERRUPTED')),
                heartbeat_at TEXT NOT NULL DEFAULT '',
                error TEXT NOT NULL DEFAULT '',
                config_json TEXT NOT NULL DEFAULT '',
                git_commit TEXT NOT NULL DEFAULT '',
                libtorch_version TEXT NOT NULL DEFAULT '',
                device TEXT NOT NULL DEFAULT '',
                host TEXT NOT NULL DEFAULT '',
                threads INTEGER NOT NULL DEFAULT 1,
                deterministic INTEGER NOT NULL DEFAULT 1,
                determinism_flags TEXT NOT NULL DEFAULT '',
                dataset_name TEXT NOT NULL DEFAULT '',
                dataset_sha256 TEXT NOT NULL DEFAULT '',
                started_at TEXT NOT NULL DEFAULT '',
                finished_at TEXT NOT NULL DEFAULT '',
                wall_seconds REAL NOT NULL DEFAULT 0,
                best_epoch INTEGER NOT NULL DEFAULT -1))",
           "CREATE INDEX run_by_experiment ON run (experiment_id, plan_index)",
           "CREATE INDEX run_by_status ON run (status, heartbeat_at)",
           R"(CREATE TABLE metric (
                run_id TEXT NOT NULL,
                split TEXT NOT NULL,
                name TEXT NOT NULL,
                value REAL NOT NULL,
                epoch INTEGER NOT NULL,
                PRIMARY KEY (run_id, split, name, epoch)) WITHOUT ROWID)",
           R"(CREATE TABLE epoch (
                run_id TEXT NOT NULL,
                epoch INTEGER NOT NULL,
                train_loss REAL NOT NULL,
                valid_loss REAL NOT NULL,
                lr REAL NOT NULL,
                seconds REAL NOT NULL,
                grad_norm REAL NOT NULL,
                PRIMARY KEY (run_id, epoch)) WITHOUT ROWID)",
           R"(CREATE TABLE throughput (
                run_id TEXT NOT NULL,
                phase TEXT NOT NULL,
                batch_size INTEGER NOT NULL,
                samples_per_s REAL NOT NULL,
                latency_p50_ms REAL NOT NULL,
                latency_p95_ms REAL NOT NULL,
                peak_memory_bytes INTEGER NOT NULL,
                parameters INTEGER NOT NULL,
                device TEXT NOT NULL,
                threads INTEGER NOT NULL,
                PRIMARY KEY (run_id, phase, batch_size)) WITHOUT ROWID)",
           R"(CREATE TABLE edge (
                run_id TEXT NOT NULL,
                space TEXT NOT NULL,
                from_modality TEXT NOT NULL,
                to_modality TEXT NOT NULL,
                weight REAL NOT NULL,
                PRIMARY KEY (run_id, space, from_modality, to_modality)) WITHOUT ROWID)",
           R"(CREATE TABLE bench (
                bench_set TEXT NOT NULL,
                name TEXT NOT NULL,
                median_ns REAL NOT NULL,
                p95_ns REAL NOT NULL,
                samples_per_s REAL NOT NULL,
                repetitions INTEGER NOT NULL,
                peak_memory_bytes INTEGER NOT NULL,
                git_commit TEXT NOT NULL DEFAULT '',
                libtorch_version TEXT NOT NULL DEFAULT '',
                device TEXT NOT NULL DEFAULT '',
                host TEXT NOT NULL DEFAULT '',
                threads INTEGER NOT NULL DEFAULT 1,
                deterministic INTEGER NOT NULL DEFAULT 1,
                determinism_flags TEXT NOT NULL DEFAULT '',
                dataset_name TEXT NOT NULL DEFAULT '',
                dataset_sha256 TEXT NOT NULL DEFAULT '',
                created_at TEXT NOT NULL,
                PRIMARY KEY (bench_set, name)))",
       }},
      // Run ownership: who holds a RUNNING run (harness/cli/ownership.h writes "host|boot
      // id|pid|start|sweep"), and how many times the run was claimed.
      {2,
       {
           "ALTER TABLE run ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
           "ALTER TABLE run ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
       }},
      // 3: the text encoder's provenance (text_model_sha256, text_model_config) and the input widths
      // (text_width, audio_width, vision_width); the columns come from provenance_fields().
      {3, {}},
      // The batch-order seed of every stored evaluation pass of the test split: the clean pass (split "test")
      // and the extra shuffled passes with the same weights (splits "test_shuffle_<i>", reference spec
      // §1.11). Seeds are unsigned 64-bit, stored as decimal text.
      {4,
       {
           R"(CREATE TABLE batch_order (
                run_id TEXT NOT NULL,
                split TEXT NOT NULL,
                seed TEXT NOT NULL,
                PRIMARY KEY (run_id, split)) WITHOUT ROWID)",
       }},
      // Slurm provenance: the provenance fields slurm_job_id and slurm_array_task (results/provenance.cpp add
      // their columns to run and bench).
      {5, {}},
      // Robustness (issue 14): the test metrics under each perturbation and level, one row per (run,
      // perturbation, level, metric); and the best weights kept for later evaluations (a file beside the
      // database, its SHA-256).
      {6,
       {
           R"(CREATE TABLE robustness (
                run_id TEXT NOT NULL,
                perturbation TEXT NOT NULL,
                level REAL NOT NULL,
                metric TEXT NOT NULL,
                value REAL NOT NULL,
                PRIMARY KEY (run_id, perturbation, level, metric)) WITHOUT ROWID)",
           R"(CREATE TABLE checkpoint (
                run_id TEXT PRIMARY KEY,
                path TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                bytes INTEGER NOT NULL,
                created_at TEXT NOT NULL))",
       }},
      // How close each benchmark case came to the machine (issue 19): the FLOPs one sample needs (matrix
      // products and the attention's products) and those of the matrix products alone, the profiled time
      // inside the matrix products per sample, and LibTorch's 512^3 product rate at the case's thread count
      // (0: not measured).
      {7,
       {
           "ALTER TABLE bench ADD COLUMN flops_per_sample REAL NOT NULL DEFAULT 0",
           "ALTER TABLE bench ADD COLUMN product_flops_per_sample REAL NOT NULL DEFAULT 0",
           "ALTER TABLE bench ADD COLUMN product_ms_per_sample REAL NOT NULL DEFAULT 0",
           "ALTER TABLE bench ADD COLUMN mm_gflops REAL NOT NULL DEFAULT 0",
       }},
  };
  return all;
}

}  // namespace dmdbench::results::detail
