// The table behind `dmdbench ls`: one line per run.
#pragma once

#include <string>

#include "results/store.h"

namespace dmdbench::results {

// Aligned plain-text columns: run (first 12 characters of the id), variant, dataset, seed, status and the summary
// metrics of metric_defs() (percent metrics in percent; the database stores fractions). Values are the final test metrics
// (split "test", epoch -1); "-" where a run has none yet. All experiments when experiment_id is empty.
std::string format_ls(const Store& store, const std::string& experiment_id = "");

}  // namespace dmdbench::results
