// `report` and `regress`: reading stored results (no LibTorch).
#include <iostream>
#include <set>

#include "ablations/variants.h"
#include "harness/cli/verb.h"
#include "reports/regress.h"
#include "reports/report.h"
#include "results/store.h"

namespace dmdbench::cli {

std::vector<reports::VariantInfo> report_variants() {
  std::vector<reports::VariantInfo> out;
  std::set<std::string> table3;
  for (const auto& set : ablations::variant_sets())
    if (set.name == "paper-table3") table3.insert(set.variants.begin(), set.variants.end());
  for (const auto& v : ablations::registry())
    out.push_back({v.name, v.description, v.paper_row, v.table3_row, table3.count(v.name) > 0});
  return out;
}

namespace {

int report_verb(const VerbArgs& a) {
  reports::ReportOptions o;
  o.command = a.command_line;
  po::options_description desc("options");
  desc.add_options()("db", po::value(&o.db_path)->default_value(kDefaultDatabase), "SQLite results database")(
      "out", po::value(&o.out_path)->default_value(o.out_path), "Markdown file to write (figures go beside it)")(
      "experiment", po::value(&o.experiment)->default_value(o.experiment), "experiment id, 'latest' or 'all'");
  po::variables_map vm;
  if (!parse("report [--db PATH] [--out PATH] [--experiment ID|latest|all]", desc, a.args, vm)) return 0;
  results::Store store(o.db_path, /*read_only=*/true);
  o.variants = report_variants();
  reports::write_report(store, o);
  std::cout << "report: " << o.out_path << "\n";
  return 0;
}

int regress_verb(const VerbArgs& a) {
  reports::RegressOptions o;
  std::string db;
  po::options_description desc("options");
  desc.add_options()("db", po::value(&db)->default_value(kDefaultDatabase), "SQLite results database")(
      "baseline", po::value(&o.baseline_path), "baseline JSON file")(
      "update-baseline", po::bool_switch(&o.update_baseline), "write the baseline from the current results")(
      "against", po::value(&o.against), "published: compare real-data runs with the published numbers")(
      "experiment", po::value(&o.experiment)->default_value("latest"), "experiment id, 'latest' or 'all'")(
      "dataset", po::value(&o.dataset), "which results (default: the baseline's dataset)")(
      "profile", po::value(&o.profile), "which results (default: the baseline's profile)")(
      "paper-tolerance", po::value(&o.paper_tolerance)->default_value(o.paper_tolerance),
      "--against published: points allowed below the paper")(
      "rerun-tolerance", po::value(&o.rerun_tolerance)->default_value(o.rerun_tolerance),
      "--against published: points allowed below the mean of independent reruns")(
      "require-valid", po::bool_switch(&o.require_valid),
      "also fail when the results are judged INVALID (runs not converged at their epoch cap, predictions collapsed "
      "toward the mean, mixed protocols)");
  po::variables_map vm;
  if (!parse("regress --db PATH --baseline FILE.json [--update-baseline] [--against published] [--require-valid]",
             desc, a.args, vm))
    return 0;
  results::Store store(db, /*read_only=*/true);
  return reports::regress(store, o, std::cout);
}

}  // namespace

std::vector<VerbImpl> report_verbs() { return {{"report", report_verb}, {"regress", regress_verb}}; }

}  // namespace dmdbench::cli
