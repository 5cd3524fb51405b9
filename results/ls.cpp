#include "results/ls.h"

#include <algorithm>
#include <map>
#include <vector>

#include <fmt/format.h>

#include "results/metrics.h"

namespace dmdbench::results {

std::string format_ls(const Store& store, const std::string& experiment_id) {
  struct Column {
    std::string header;
    bool numeric;
  };
  std::vector<Column> columns = {{"run", false}, {"variant", false}, {"dataset", false}, {"seed", true},
                                 {"status", false}};
  std::vector<const MetricDef*> shown;
  for (const auto& m : metric_defs())
    if (m.in_summary) {
      shown.push_back(&m);
      columns.push_back({std::string(m.label) + (m.percent ? " %" : ""), true});
    }
  std::vector<std::vector<std::string>> rows;
  for (const auto& run : store.runs(experiment_id)) {
    std::map<std::string, double> test;
    for (const auto& m : store.metrics(run.spec.run_id))
      if (m.split == "test" && m.epoch == -1) test[m.name] = m.value;
    std::vector<std::string> row = {run.spec.run_id.substr(0, 12), run.spec.variant, run.spec.dataset,
                                    std::to_string(run.spec.seed), status_name(run.status)};
    for (const auto* m : shown) {
      auto it = test.find(m->name);
      row.push_back(it == test.end() ? std::string("-") : format_stored(*m, it->second));
    }
    rows.push_back(std::move(row));
  }
  std::vector<size_t> width(columns.size());
  for (size_t c = 0; c < columns.size(); ++c) {
    width[c] = columns[c].header.size();
    for (const auto& r : rows) width[c] = std::max(width[c], r[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) {
      if (c) out += "  ";
      out += columns[c].numeric ? fmt::format("{:>{}}", cells[c], width[c]) : fmt::format("{:<{}}", cells[c], width[c]);
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::vector<std::string> header;
  for (const auto& c : columns) header.push_back(c.header);
  std::string out = line(header);
  for (const auto& r : rows) out += line(r);
  if (rows.empty()) out += experiment_id.empty() ? "(no runs)\n" : fmt::format("(no runs in experiment {})\n", experiment_id);
  return out;
}

}  // namespace dmdbench::results
