// Runs of one experiment read from the store and grouped the way reports and the gate compare them:
// dataset x setting x profile, then variant, then seed.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "results/store.h"

namespace dmdbench::reports {

// The metrics a report shows, in column order. Accuracies and F1 are stored as fractions and shown in percent.
struct MetricInfo {
  const char* name;   // as stored ("mae", "acc2_non0", ...)
  const char* label;  // column header
  bool lower_is_better;
  bool percent;
};
const std::vector<MetricInfo>& report_metrics();        // mae, corr, acc2_has0, f1_has0, acc2_non0, f1_non0, acc5, acc7
const MetricInfo* find_metric(const std::string& name);  // also acc3; nullptr when unknown
// The value as shown: x100 for percent metrics.
double display_value(const MetricInfo& m, double stored);
std::string format_value(const MetricInfo& m, double shown);  // 4 decimals, or 2 for percent metrics

struct RunData {
  results::RunRow row;
  std::string setting;                 // "aligned" | "unaligned" | "" (unknown)
  std::map<std::string, double> test;  // final test metrics (split "test", epoch -1), as stored
  std::vector<results::EpochRow> epochs;
  std::vector<results::ThroughputRow> throughput;
  std::vector<results::EdgeRow> edges;
};

struct Group {
  std::string dataset, setting, profile;
  std::vector<size_t> runs;                               // every run of the group (indices into Collected::runs)
  std::vector<std::string> variants;                      // registry order, then unknown names in plan order
  std::map<std::string, std::vector<size_t>> completed;   // variant -> the latest COMPLETED run per seed
  std::string title() const;                              // "dataset · setting · profile P"
  std::vector<double> values(const struct Collected& c, const std::string& variant, const std::string& metric) const;
};

struct Collected {
  std::string experiment_id;  // empty for "all"
  std::optional<results::ExperimentRow> experiment;
  std::vector<RunData> runs;
  std::vector<Group> groups;  // in plan order of their first run
};

// which: "latest" (the newest experiment), "all", or an experiment id. Throws ReportError for an unknown id.
Collected collect(const results::Store& store, const std::string& which,
                  const std::vector<std::string>& variant_order = {});

// The data setting of a run: config_json's "setting" (top level or under "data"/"dataset"), else "unaligned" or
// "aligned" when the dataset name says so, else empty.
std::string run_setting(const results::RunRow& run);

}  // namespace dmdbench::reports
