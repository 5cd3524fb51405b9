// The Markdown report: one table per dataset x setting x profile with mean ± std over seeds, differences from
// full DMD with Welch t-tests, published numbers for real data, throughput, gnuplot SVG figures, benchmarks,
// run-level detail and a provenance footer.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "results/store.h"

namespace dmdbench::reports {

struct ReportError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct VariantInfo {
  std::string name, description;
  std::string paper_row = "";  // where it sits in the DMD paper ("Table 3 row 2 (...)"), "" for nowhere
  int table3_row = 0;          // the paper's Table 3 row it reproduces (1-6), 0 for none
  bool table3_set = false;  // one of the paper-table3 set: its runs make the report show the Table 3 section
};

struct ReportOptions {
  std::string db_path, out_path = "reports/latest.md", experiment = "latest";  // "latest", "all" or an id
  std::vector<VariantInfo> variants;  // registry order, from the caller
  std::string command;                // the exact command that regenerates the report (footer)
  std::string gnuplot = "gnuplot";    // program that draws the figures; when missing the report says so
};

// Writes out_path atomically, and the figures (SVG, with their .dat data and .gp scripts) into
// "<out_path without .md>-figures/". Throws ReportError when there is nothing to report or a file cannot be
// written.
void write_report(const results::Store& store, const ReportOptions& options);

}  // namespace dmdbench::reports
