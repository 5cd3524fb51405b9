// The regression gate: the latest completed results per (dataset, variant) against a baseline JSON file, or,
// for real data, against the published DMD numbers.
//
// Baseline file (acc* and f1* values and tolerances in percent points; mae and corr raw):
//   {"dataset": "synthetic-mosi", "profile": "smoke", "setting": "", "k": 3,
//    "tolerances": {"mae": 0.005, "corr": 0.01, "acc2_non0": 0.5, ...},
//    "variants": {"dmd": {"mae": {"mean": 0.7, "std": 0.01, "n": 3}, ...}, ...},
//    "experiment": "...", "created_at": "...", "git_commit": "...", "units": "..."}
// A metric regresses when it moved in its bad direction (MAE up, anything else down) by more than
// max(tolerance, k * std / sqrt(n)), std and n from the baseline.
//
// The compared results are also judged (reports/judgments.h): a variant with runs that were still improving at
// their epoch cap or whose predictions collapsed toward the mean, and protocol differences between the runs, are
// printed as "judgment:" lines. With require_valid they fail the gate; without it they are information (the
// smoke profile of CI is capped at 3 epochs on purpose, so its runs are never converged).
#pragma once

#include <iosfwd>
#include <string>

#include "results/store.h"

namespace dmdbench::reports {

struct RegressOptions {
  std::string baseline_path;          // read, or written with update_baseline
  std::string experiment = "latest";  // "latest", "all" or an experiment id
  std::string dataset, profile;       // which results; default: the baseline's (update: the only ones stored)
  bool update_baseline = false;       // write baseline_path from the current results (atomically) and return 0
  std::string against;                // "" (the baseline file) or "published"
  double paper_tolerance = 3.0;       // points of Acc-2/F1/Acc-7 below the paper (reruns land ~2 under it)
  double rerun_tolerance = 1.5;       // points below the mean of the independent reruns
  bool require_valid = false;         // fail when the compared results are judged INVALID
};

// Prints one line per metric that moved beyond its tolerance (variant, metric, baseline, now, tolerance,
// REGRESSION or improved), one line per variant missing on either side, one per INVALID judgment, and a summary
// line. Returns 1 when anything regressed, nothing could be compared, or (require_valid) a judgment is INVALID;
// else 0. Against the published numbers, require_valid judges full DMD's runs; the protocol differences from the
// paper (text input, recipe) are printed as notes, since they hold for every run of this tool. Throws ReportError for an unreadable baseline, an
// unknown experiment or an ambiguous choice of results.
int regress(const results::Store& store, const RegressOptions& options, std::ostream& out);

}  // namespace dmdbench::reports
