#include "harness/experiment/plan.h"

#include <fmt/format.h>

#include <cstdlib>
#include <set>
#include <sstream>

#include "harness/io/sha256.h"

namespace dmdbench {

Plan make_plan(const PlanRequest& req) {
  if (req.variants.empty()) throw ConfigError("the plan has no variants");
  if (req.seeds.empty()) throw ConfigError("the plan has no seeds");
  std::vector<std::string> names;
  for (const auto& [name, cfg] : req.variants) names.push_back(name);
  nlohmann::ordered_json request = {{"dataset", req.dataset},   {"variants", names},
                                    {"seeds", req.seeds},       {"profile", req.profile},
                                    {"overrides", req.overrides}, {"code", req.code_version}};
  if (!req.text_model_sha256.empty()) request["text_model_sha256"] = req.text_model_sha256;
  Plan plan;
  plan.experiment_id = sha256_string(request.dump()).substr(0, 12);
  plan.text_model_sha256 = req.text_model_sha256;
  int index = 0;
  for (const auto& [variant, cfg] : req.variants) {
    for (int64_t seed : req.seeds) {
      PlannedRun r;
      r.index = index++;
      r.variant = variant, r.dataset = req.dataset, r.profile = req.profile, r.seed = seed, r.config = cfg;
      nlohmann::ordered_json key = {{"variant", variant}, {"dataset", req.dataset}, {"profile", req.profile},
                                    {"seed", seed},       {"config", cfg.json()},   {"code", req.code_version}};
      if (uses_text_model(cfg)) {
        if (req.text_model_sha256.empty())
          throw ConfigError(
              fmt::format("variant {} reads text through a BERT, and the plan has no BERT weights", variant));
        key["text_model_sha256"] = req.text_model_sha256;
      }
      r.run_id = sha256_string(key.dump()).substr(0, 16);
      plan.runs.push_back(std::move(r));
    }
  }
  return plan;
}

Shard parse_shard(const std::string& text) {
  std::string t = text;
  if (t.empty()) {
    const char* id = std::getenv("SLURM_ARRAY_TASK_ID");
    const char* count = std::getenv("SLURM_ARRAY_TASK_COUNT");
    if (!id || !count) return {};
    t = fmt::format("{}/{}", id, count);
  }
  Shard s;
  char slash = 0, extra = 0;
  std::istringstream in(t);
  if (!(in >> s.index >> slash >> s.count) || slash != '/' || (in >> extra) || s.count < 1 || s.index < 0 ||
      s.index >= s.count)
    throw ConfigError(fmt::format("bad shard '{}', expected i/N with 0 <= i < N", t));
  return s;
}

std::vector<PlannedRun> shard_runs(const Plan& plan, const Shard& shard) {
  std::vector<PlannedRun> out;
  for (const auto& r : plan.runs)
    if (r.index % shard.count == shard.index) out.push_back(r);
  return out;
}

std::vector<int64_t> parse_seed_list(const std::string& text) {
  std::vector<int64_t> seeds;
  std::set<int64_t> seen;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::logic_error&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < 0)
      throw ConfigError(fmt::format("bad seed '{}' in '{}', expected non-negative integers separated by commas", item, text));
    if (!seen.insert(v).second) throw ConfigError(fmt::format("seed {} is listed twice", v));
    seeds.push_back(v);
  }
  if (seeds.empty()) throw ConfigError("the seed list is empty");
  return seeds;
}

}  // namespace dmdbench
