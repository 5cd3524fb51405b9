// `run-ablation`: the plan (variants x seeds on one dataset), resume, the runs as worker processes, progress,
// the summary and the report. The parent process never trains; each worker runs one plan entry.
#pragma once

#include <string>
#include <vector>

#include "harness/experiment/plan.h"

namespace dmdbench::cli {

struct AblationArgs {
  std::string dataset = "synthetic-mosi", variants = "all", seeds = "1111,1112,1113";
  std::string profile;  // empty: paper on a real dataset, quick on a synthetic one (default_profile)
  std::string bert;     // a Hugging Face BERT folder for DMD's text encoder (--bert), or empty
  std::string device = "auto", db, shard, report = "reports/latest.md";
  int jobs = 0;  // 0: the number of cores
  bool force = false, fast = false, no_report = false;
  std::string robustness;        // off | default | full; empty: the profile's default (Profile::robustness_grid)
  bool keep_checkpoints = false; // keep each run's best weights beside the database (checkpoint_path)
  std::vector<std::string> sets;
  int worker = -1;           // internal: run plan entry N in this process (a child of run-ablation)
  std::string owner;         // internal: the claim token of the parent that started this worker
  int emit_sbatch = 0;       // print a Slurm array script for N shards instead of running
  std::string runs;          // "0,3,5": run only these plan entries (a Slurm shard task's list)
  bool slurm = false;        // submit the plan as a Slurm array (harness/cli/slurm.h) instead of running it here
  bool no_wait = false;      // --slurm: return after submitting
  int shards = 0;            // --slurm: number of shards (0: one per run)
  std::vector<std::string> slurm_opts;  // --slurm: sbatch options, each a string of space-separated options
  std::string command_line;  // as typed, for the report's provenance
};

// The plan of `a` (its profile resolved when empty). With --bert, the weights file's SHA-256 is part of the
// run ids of every run that reads text through the BERT.
Plan plan_of(AblationArgs& a);
// One line when the plan runs MulT on aligned data: MMSA's MulT numbers are unaligned. "" otherwise.
std::string mult_setting_note(const AblationArgs& a);
// The robustness grid a sweep evaluates: --robustness, else the profile's default.
std::string robustness_grid_name(const AblationArgs& a);
// Where a run's best weights are kept: DIR/STEM-checkpoints/RUN_ID.pt beside the database DIR/STEM.sqlite; the
// store records the path relative to the database's directory.
std::string checkpoint_relative_path(const std::string& db, const std::string& run_id);
std::string resolve_checkpoint_path(const std::string& db, const std::string& relative);
int run_ablation(AblationArgs a);                                    // the parent
int run_worker(const AblationArgs& a, const Plan& plan, int index);  // one plan entry, in this process

}  // namespace dmdbench::cli
