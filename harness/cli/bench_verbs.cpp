// `bench`: the Google Benchmark suite (bench/), stored in the database, or two stored sets compared.
#include <fmt/format.h>

#include <iostream>

#include "bench/bench.h"
#include "harness/cli/verb.h"

namespace dmdbench::cli {

namespace {

int bench_verb(const VerbArgs& va) {
  bench::BenchArgs a;
  a.command_line = va.command_line;
  a.db = kDefaultDatabase;
  std::vector<std::string> compare;
  po::options_description desc("options");
  desc.add_options()("filter", po::value(&a.filter)->default_value(a.filter),
                     "regular expression over case names")("db", po::value(&a.db)->default_value(a.db),
                                                           "SQLite results database")(
      "repetitions", po::value(&a.repetitions)->default_value(a.repetitions), "repetitions per case")(
      "min-time", po::value(&a.min_time)->default_value(a.min_time), "seconds per repetition")(
      "device", po::value(&a.device)->default_value(a.device), "auto | cpu | cuda[:N]")(
      "bert", po::value(&a.bert),
      "Hugging Face BERT folder for the dmd-bert cases (default: bert-base-uncased's architecture, random "
      "weights)")("list", po::bool_switch(&a.list), "list the cases and exit")(
      "profile", po::value(&a.profile_ops)->default_value(0),
      "N > 0: after the cases, each eval and training-step case's N largest ops by self time (profiled)")(
      "compare", po::value(&compare)->multitoken(), "BASE_ID NEW_ID: two stored sets side by side");
  po::variables_map vm;
  if (!parse("bench [--filter REGEX] [--db PATH] [--repetitions N] | bench --compare BASE NEW", desc, va.args, vm))
    return 0;
  if (a.repetitions < 1) throw po::error(fmt::format("--repetitions is {}, expected 1 or more", a.repetitions));
  if (a.profile_ops < 0) throw po::error(fmt::format("--profile is {}, expected 0 or more", a.profile_ops));
  if (!(a.min_time > 0)) throw po::error(fmt::format("--min-time is {}, expected seconds above 0", a.min_time));
  if (!compare.empty()) {
    if (compare.size() != 2) throw po::error("--compare takes two benchmark set ids");
    return bench::compare_sets(a.db, compare[0], compare[1], std::cout);
  }
  return bench::run_suite(a);
}

}  // namespace

std::vector<VerbImpl> bench_verbs() { return {{"bench", bench_verb}}; }

}  // namespace dmdbench::cli
