// run-ablation on a Slurm cluster (no LibTorch): the experiment folder, the array script, submission with sbatch,
// following the array with scontrol, collecting the shard databases into the main one, resubmitting what is not
// completed, and what a shard task reads from its Slurm environment.
//
// The experiment folder sits next to the database: DB_DIR/DB_STEM.slurm-EXPERIMENT_ID/ holding
//   experiment.json      the plan (run ids, variants, seeds, costs), the shards (plan indices per shard), every
//                        submission (array job id, its shards), the database, the report and the task arguments
//   submit-K.sh          the array script of submission K (0 the first, 1.. resubmissions); task N runs shard N
//   shard-N.sqlite       shard N's own database;  shard-N.log  its output;  shard-N.exit  its exit status
// Shard numbers run on across submissions (a resubmission's array is --array=5,6,...), so no file is reused.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dmdbench::cli::slurm {

// What a shard task reads from Slurm (all empty / 0 outside a Slurm job).
struct TaskEnv {
  bool in_slurm = false;       // SLURM_JOB_ID is set
  int cpus = 0;                // SLURM_CPUS_PER_TASK, else SLURM_CPUS_ON_NODE; 0 when neither
  std::string cuda_visible;    // CUDA_VISIBLE_DEVICES ("" when unset)
  std::string array_task;      // "ARRAYJOB_TASK" ("" outside an array)
};
TaskEnv task_env();
// The device a task uses for --device auto: cuda when Slurm gave it a GPU (CUDA_VISIBLE_DEVICES names one),
// else cpu, so a task never takes a GPU it was not allocated.
std::string task_device(const TaskEnv& env);

struct PlanRun {
  int index = 0;
  std::string run_id, variant;
  int64_t seed = 0;
  double cost = 0;  // run_cost (harness/experiment/plan.h)
};

// What run-ablation --slurm submits.
struct SubmitRequest {
  std::string experiment_id, db, report, command, description;
  std::vector<std::string> task_args;       // run-ablation options every shard task gets (dataset, variants, ...)
  std::vector<std::string> sbatch_options;  // --slurm-opt, split at spaces
  int shards = 0;                           // 0: one per run
  bool wait = true;
  std::vector<PlanRun> runs;
};
int submit_sweep(const SubmitRequest& req);

// `dmdbench slurm status|collect|resubmit EXPERIMENT_DIR`.
int status(const std::string& dir, bool wait);
int collect(const std::string& dir);
int resubmit(const std::string& dir, const std::vector<std::string>& sbatch_options, bool wait);

// The experiment folder of a database and experiment id.
std::string experiment_dir(const std::string& db, const std::string& experiment_id);

// Slurm's JobState values of a task that has not ended (PENDING, RUNNING, COMPLETING, ...).
bool active_state(const std::string& state);
// "0-2,5,7-9%2" -> 0 1 2 5 7 8 9 (scontrol's ArrayTaskId of a pending range).
std::vector<int> parse_task_ids(const std::string& text);

}  // namespace dmdbench::cli::slurm
