#include "reports/collect.h"

#include <algorithm>
#include <set>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "reports/report.h"

namespace dmdbench::reports {

std::vector<const results::MetricDef*> table_metrics() {
  std::vector<const results::MetricDef*> out;
  for (const auto& m : results::metric_defs())
    if (m.in_table) out.push_back(&m);
  return out;
}

std::string variant_of(const std::string& label) { return label.substr(0, label.find(" [")); }

namespace {

// Runs of one variant whose configurations differ (an override, an execution option) are different rows: each
// run's label is its variant plus the configuration keys on which that variant's runs in the group disagree.
void label_by_configuration(Collected& c, const Group& g) {
  std::map<std::string, std::vector<size_t>> by_variant;
  for (size_t i : g.runs) by_variant[c.runs[i].row.spec.variant].push_back(i);
  for (const auto& [variant, idx] : by_variant) {
    std::vector<nlohmann::json> configs;
    for (size_t i : idx) {
      auto j = nlohmann::json::parse(c.runs[i].row.spec.config_json, nullptr, false);
      configs.push_back(j.is_object() ? j : nlohmann::json::object());
    }
    std::set<std::string> differing;
    for (const auto& cfg : configs)
      for (const auto& [key, value] : cfg.items())
        for (const auto& other : configs)
          if (!other.contains(key) || other[key] != value) differing.insert(key);
    for (std::size_t k = 0; k < idx.size(); ++k) {
      std::string delta;
      for (const auto& key : differing)
        delta += fmt::format("{}{}={}", delta.empty() ? "" : ", ", key,
                             configs[k].contains(key) ? (configs[k][key].is_string() ? configs[k][key].get<std::string>()
                                                                                   : configs[k][key].dump())
                                                      : "(unset)");
      c.runs[idx[k]].label = delta.empty() ? variant : variant + " [" + delta + "]";
    }
  }
}

}  // namespace

std::string Group::title() const {
  std::string t = dataset;
  if (!setting.empty()) t += " · " + setting;
  return t + " · profile " + profile;
}

std::vector<double> Group::values(const Collected& c, const std::string& variant, const std::string& metric) const {
  std::vector<double> out;
  auto it = completed.find(variant);
  if (it == completed.end()) return out;
  for (size_t i : it->second) {
    auto m = c.runs[i].test.find(metric);
    if (m != c.runs[i].test.end()) out.push_back(m->second);
  }
  return out;
}

std::string run_setting(const results::RunRow& run) {
  const auto config = nlohmann::json::parse(run.spec.config_json, nullptr, /*allow_exceptions=*/false);
  if (config.is_object()) {
    if (config.contains("setting") && config["setting"].is_string()) return config["setting"].get<std::string>();
    for (const char* section : {"data", "dataset"})
      if (config.contains(section) && config[section].is_object() && config[section].contains("setting") &&
          config[section]["setting"].is_string())
        return config[section]["setting"].get<std::string>();
  }
  const auto& name = run.spec.dataset;
  if (name.find("unaligned") != std::string::npos) return "unaligned";
  if (name.find("aligned") != std::string::npos) return "aligned";
  return "";
}

std::string run_text_protocol(const results::RunRow& run) {
  const auto config = nlohmann::json::parse(run.spec.config_json, nullptr, /*allow_exceptions=*/false);
  if (!config.is_object() || !config.contains("text_encoder") || !config["text_encoder"].is_string())
    return "";
  const std::string enc = config["text_encoder"].get<std::string>();
  if (enc == "bert-finetune" || enc == "bert-frozen") return enc;
  int64_t width = run.prov.text_width;
  if (width == 0 && enc == "bert-features (frozen)") width = 768;  // before text_encoder had its three values
  if (width == 300) return "features (GloVe 300-d)";
  return width > 0 ? fmt::format("features ({}-d)", width) : "features";
}

Collected collect(const results::Store& store, const std::string& which,
                  const std::vector<std::string>& variant_order) {
  Collected c;
  if (which == "latest") {
    c.experiment = store.latest_experiment();
    if (!c.experiment) throw ReportError(fmt::format("database {} holds no runs", store.path()));
    c.experiment_id = c.experiment->id;
  } else if (which != "all") {
    for (const auto& e : store.experiments())
      if (e.id == which) c.experiment = e;
    c.experiment_id = which;
  }
  for (auto& row : store.runs(c.experiment_id)) {
    RunData d;
    d.setting = run_setting(row);
    d.text = run_text_protocol(row);
    for (const auto& m : store.metrics(row.spec.run_id)) {
      if (m.epoch != -1) continue;
      if (m.split == "test") d.test[m.name] = m.value;
      else if (m.split == "train") d.train[m.name] = m.value;
      else if (m.split.rfind("test_shuffle_", 0) == 0) d.shuffled[m.split][m.name] = m.value;
    }
    d.epochs = store.epochs(row.spec.run_id);
    d.throughput = store.throughput(row.spec.run_id);
    d.edges = store.edges(row.spec.run_id);
    d.row = std::move(row);
    c.runs.push_back(std::move(d));
  }
  if (c.runs.empty() && which != "latest" && which != "all")
    throw ReportError(fmt::format("database {} has no experiment {}", store.path(), which));

  for (size_t i = 0; i < c.runs.size(); ++i) {
    const auto& r = c.runs[i];
    auto g = std::find_if(c.groups.begin(), c.groups.end(), [&](const Group& x) {
      return std::tie(x.dataset, x.setting, x.profile) == std::tie(r.row.spec.dataset, r.setting, r.row.spec.profile);
    });
    if (g == c.groups.end()) {
      c.groups.push_back({r.row.spec.dataset, r.setting, r.row.spec.profile, {}, {}, {}});
      g = std::prev(c.groups.end());
    }
    g->runs.push_back(i);
  }
  for (auto& g : c.groups) {
    label_by_configuration(c, g);
    std::vector<std::string> seen;
    for (size_t i : g.runs)
      if (std::find(seen.begin(), seen.end(), c.runs[i].label) == seen.end()) seen.push_back(c.runs[i].label);
    for (const auto& v : variant_order)
      for (const auto& label : seen)
        if (variant_of(label) == v && std::find(g.variants.begin(), g.variants.end(), label) == g.variants.end())
          g.variants.push_back(label);
    for (const auto& v : seen)
      if (std::find(g.variants.begin(), g.variants.end(), v) == g.variants.end()) g.variants.push_back(v);
    // The latest completed run per (row, seed): a seed rerun with the same configuration (e.g. by a newer build)
    // replaces the older.
    std::map<std::pair<std::string, int64_t>, size_t> latest;
    for (size_t i : g.runs) {
      const auto& r = c.runs[i].row;
      if (r.status != results::RunStatus::Completed) continue;
      auto key = std::make_pair(c.runs[i].label, r.spec.seed);
      auto it = latest.find(key);
      if (it == latest.end() || !(r.finished_at < c.runs[it->second].row.finished_at)) latest[key] = i;  // ties: later
    }
    for (const auto& [key, i] : latest) g.completed[key.first].push_back(i);
  }
  return c;
}

}  // namespace dmdbench::reports
