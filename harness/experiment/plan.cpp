#include "harness/experiment/plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <sstream>

#include "harness/experiment/dataset_spec.h"
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

double run_cost(const PlannedRun& run) {
  const DatasetSpec spec = parse_dataset_spec(run.dataset);
  const std::string family = spec.family.empty() ? run.config.str("family") : spec.family;
  const double samples = static_cast<double>(reference_split_sizes(family).train) /
                         static_cast<double>(reference_split_sizes("mosi").train);
  const double fraction = !spec.synthetic ? 1.0 : spec.scale > 0 ? spec.scale : run.config.num("synthetic_scale");
  const int64_t cap = run.config.integer("max_epochs");
  const double epochs = cap > 0 ? static_cast<double>(cap) : 30.0;
  // A BERT in the step (`dmdbench bench`, MOSI batch 16, one thread: DMD train step 0.29 s on features, 3.7 s
  // with bert-base-uncased fine-tuned; its forward alone 1.1 s): 13x fine-tuned, 4.5x frozen.
  const std::string text = run.config.has("text_encoder") ? run.config.str("text_encoder") : "features";
  const double encoder = text == "bert-finetune" ? 13.0 : text == "bert-frozen" ? 4.5 : 1.0;
  return samples * fraction * epochs * encoder;
}

std::vector<std::vector<int>> balance_by_cost(const std::vector<std::pair<int, double>>& items, int shards) {
  if (shards < 1) throw ConfigError(fmt::format("{} shards, expected 1 or more", shards));
  std::vector<std::pair<int, double>> order = items;
  std::stable_sort(order.begin(), order.end(), [](const auto& x, const auto& y) {
    return x.second != y.second ? x.second > y.second : x.first < y.first;
  });
  std::vector<std::vector<int>> groups(static_cast<std::size_t>(shards));
  std::vector<double> load(groups.size(), 0.0);
  for (const auto& [index, cost] : order) {
    const auto g = static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    groups[g].push_back(index);
    load[g] += cost;
  }
  std::vector<std::vector<int>> out;
  for (auto& g : groups)
    if (!g.empty()) {
      std::sort(g.begin(), g.end());
      out.push_back(std::move(g));
    }
  return out;
}

}  // namespace dmdbench
