// The verbs behind the CLI. main.cpp parses options into these structs and calls one function.
// Each returns the process exit code; user mistakes are reported as one sentence on stderr.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reports/regress.h"
#include "reports/report.h"

namespace dmdbench {

struct TrainArgs {
  std::string dataset = "synthetic-mosi", profile = "quick", variant = "dmd", device = "auto";
  int64_t seed = 1111;
  int threads = 1;
  bool fast = false;  // CUDA: allow TF32 and cuDNN autotuning (recorded)
  std::string checkpoint_out;
  std::vector<std::string> sets;
};
int cmd_train(const TrainArgs& a);

struct EvaluateArgs {
  std::string checkpoint, data, config, split = "test", predictions, device = "auto";
  int threads = 1;
  bool zero_nan = false;
};
int cmd_evaluate(const EvaluateArgs& a);

struct AblationArgs {
  std::string dataset = "synthetic-mosi", variants = "all", seeds = "1111,1112,1113", profile = "quick";
  std::string device = "auto", db = "results/dmdbench.sqlite", shard, report = "reports/latest.md";
  int jobs = 0;  // 0: the number of cores
  bool force = false, fast = false, no_report = false;
  std::vector<std::string> sets;
  int worker = -1;           // internal: run plan entry N in this process (a child of run-ablation)
  int emit_sbatch = 0;       // print a Slurm array script for N shards instead of running
  std::string command_line;  // as typed, for the report's provenance
};
int cmd_run_ablation(const AblationArgs& a);

int cmd_ls(const std::string& db);
// The report with the variant registry's legend; prints the report's path.
int cmd_report(reports::ReportOptions o);
int cmd_regress(const std::string& db, const reports::RegressOptions& o);
int cmd_merge(const std::string& out, const std::vector<std::string>& inputs);

}  // namespace dmdbench
