// Sweep planning: variants x seeds on one dataset -> an ordered list of run specs with stable ids; sharding.
// The variants come resolved (name and configuration, from the registry in ablations/), so the plan knows
// nothing of how a variant changes the model.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "harness/experiment/config.h"

namespace dmdbench {

struct PlanRequest {
  std::string dataset = "synthetic-mosi";  // as --dataset takes it
  // Registry names with their resolved configurations (reference -> profile -> variant -> overrides), in the
  // order to run.
  std::vector<std::pair<std::string, Config>> variants;
  std::vector<int64_t> seeds{1111, 1112, 1113};
  std::string profile = "quick";
  std::vector<std::string> overrides;      // "key=value"
  std::string code_version;                // the build's git commit
  // SHA-256 of the BERT weights (--bert): part of the id of every run whose configuration reads text through
  // a BERT (uses_text_model), so other weights are other runs; empty without a BERT.
  std::string text_model_sha256;
};

struct PlannedRun {
  int index = 0;
  std::string
      run_id;  // sha256 of {variant, dataset, profile, seed, resolved config, code version[, BERT weights]}
  std::string variant, dataset, profile;
  int64_t seed = 0;
  Config config;
};

struct Plan {
  std::string experiment_id;  // sha256 of the request, 12 hex: rerunning the same command resumes it
  std::string text_model_sha256;  // the request's
  std::vector<PlannedRun> runs;
};

Plan make_plan(const PlanRequest& req);

struct Shard {
  int index = 0, count = 1;  // this process runs plan entries with entry.index % count == index
};
// "i/N" with 0 <= i < N; empty text reads SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when set.
Shard parse_shard(const std::string& text);
std::vector<PlannedRun> shard_runs(const Plan& plan, const Shard& shard);

std::vector<int64_t> parse_seed_list(const std::string& text);  // "1111,1112,1113"

// The expected cost of a run in units of one epoch of the full MOSI training split, for balancing shards (the one
// cost function): the family's training samples (MOSEI 16326 / MOSI 1284, ~13x), the synthetic fraction, the
// epoch cap (uncapped: the reference's early stop after ~30 epochs) and the text encoder (fine-tuned BERT ~10x
// the frozen features).
double run_cost(const PlannedRun& run);
// Plan indices split into `shards` groups of about equal total cost (longest first onto the least loaded group;
// ties by index, so the split is deterministic). `items` are (plan index, cost); empty groups are dropped.
std::vector<std::vector<int>> balance_by_cost(const std::vector<std::pair<int, double>>& items, int shards);

}  // namespace dmdbench
