#include "results/ls.h"

#include <algorithm>
#include <map>
#include <vector>

#include <fmt/format.h>

namespace dmdbench::results {

std::string format_ls(const Store& store, const std::string& experiment_id) {
  struct Column {
    const char* header;
    bool numeric;
  };
  const std::vector<Column> columns = {{"run", false},  {"variant", false},   {"dataset", false},
                                       {"seed", true},  {"status", false},    {"MAE", true},
                                       {"Corr", true},  {"Acc-2 non0 %", true}, {"F1 non0 %", true}};
  std::vector<std::vector<std::string>> rows;
  for (const auto& run : store.runs(experiment_id)) {
    std::map<std::string, double> test;
    for (const auto& m : store.metrics(run.spec.run_id))
      if (m.split == "test" && m.epoch == -1) test[m.name] = m.value;
    auto value = [&](const char* name, double scale, int digits) {
      auto it = test.find(name);
      return it == test.end() ? std::string("-") : fmt::format("{:.{}f}", it->second * scale, digits);
    };
    rows.push_back({run.spec.run_id.substr(0, 12), run.spec.variant, run.spec.dataset,
                    std::to_string(run.spec.seed), status_name(run.status), value("mae", 1, 4),
                    value("corr", 1, 4), value("acc2_non0", 100, 2), value("f1_non0", 100, 2)});
  }
  std::vector<size_t> width(columns.size());
  for (size_t c = 0; c < columns.size(); ++c) {
    width[c] = std::string(columns[c].header).size();
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
