// Runs of one experiment read from the store and grouped the way reports and the gate compare them:
// dataset x setting x profile, then variant, then seed.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "results/metrics.h"
#include "results/store.h"

namespace dmdbench::reports {

// The metrics of the report's results table (metric_defs() entries with in_table), in column order.
std::vector<const results::MetricDef*> table_metrics();

struct RunData {
  results::RunRow row;
  std::string label;                   // the variant, plus " [key=value, ...]" when that variant's runs in the
                                       // group differ in configuration (each configuration is its own row)
  std::string setting;                 // "aligned" | "unaligned" | "" (unknown)
  std::string text;                    // the text protocol (run_text_protocol)
  std::map<std::string, double> test;  // final test metrics (split "test", epoch -1), as stored
  std::map<std::string, double> train; // checks recorded on the training side (split "train", epoch -1)
  // The same weights on the test split in other batch orders: split "test_shuffle_<i>" -> metrics.
  std::map<std::string, std::map<std::string, double>> shuffled;
  std::vector<results::EpochRow> epochs;
  std::vector<results::ThroughputRow> throughput;
  std::vector<results::EdgeRow> edges;
};

struct Group {
  std::string dataset, setting, profile;
  std::vector<size_t> runs;                               // every run of the group (indices into Collected::runs)
  std::vector<std::string> variants;                      // row labels: registry order, then unknown names
  std::map<std::string, std::vector<size_t>> completed;   // row label -> the latest COMPLETED run per seed
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

// The variant of a row label ("dmd [autocast=bf16]" -> "dmd").
std::string variant_of(const std::string& label);

// The data setting of a run: config_json's "setting" (top level or under "data"/"dataset"), else "unaligned" or
// "aligned" when the dataset name says so, else empty.
std::string run_setting(const results::RunRow& run);

// The text protocol of a run, from its configuration's text_encoder and its recorded text width:
// "bert-finetune" (the reference: BERT fine-tuned in the one Adam), "bert-frozen", "features (768-d)" (frozen
// precomputed BERT features; runs from before the key had values record "bert-features (frozen)"),
// "features (GloVe 300-d)"; "" when the run records none.
std::string run_text_protocol(const results::RunRow& run);

}  // namespace dmdbench::reports
