// The command line's verbs. Two executables share this table: `dmdbench`, which never loads LibTorch and runs
// the verbs that need none (ls, merge, report, regress, slurm, --help) in its own process, and `dmdbench-torch`
// beside it, which runs the others; `dmdbench` hands those to it with exec, so one name serves every verb.
// Each verb parses its options with Boost.Program_options and calls one function; nothing else happens here.
#pragma once

#include <boost/program_options.hpp>

#include <string>
#include <vector>

#include "reports/report.h"

namespace dmdbench::cli {

namespace po = boost::program_options;

struct VerbArgs {
  std::vector<std::string> args;  // after the verb
  std::string command_line;       // as typed, for provenance
};
using VerbFn = int (*)(const VerbArgs&);

struct Verb {
  const char* name;
  const char* summary;
  bool needs_torch;  // run by dmdbench-torch
};
// Every verb, in the order `dmdbench --help` lists them.
const std::vector<Verb>& verbs();

// Implementations by family (one file each): name -> function.
struct VerbImpl {
  const char* name;
  VerbFn run;
};
std::vector<VerbImpl> store_verbs();     // ls, merge                      (store_verbs.cpp, no LibTorch)
std::vector<VerbImpl> report_verbs();    // report, regress                (report_verbs.cpp, no LibTorch)
std::vector<VerbImpl> training_verbs();  // run-ablation, train, evaluate  (training_verbs.cpp)
std::vector<VerbImpl> data_verbs();      // data info, inspect-checkpoint  (data_verbs.cpp)
std::vector<VerbImpl> robustness_verbs();  // robustness               (robustness_verb.cpp)
std::vector<VerbImpl> bench_verbs();     // bench                          (bench_verbs.cpp)
std::vector<VerbImpl> slurm_verbs();     // slurm status|collect|resubmit  (slurm_verbs.cpp, no LibTorch)

// Adds --help, parses `args` into vm; prints the usage and returns false on --help.
bool parse(const std::string& usage, po::options_description& desc, const std::vector<std::string>& args,
           po::variables_map& vm, const po::positional_options_description* pos = nullptr);

// A duration for progress lines: "1:05" or "1:02:03".
std::string format_duration(double seconds);

// The variant registry as the report's legend reads it (report_verbs.cpp).
std::vector<reports::VariantInfo> report_variants();

// The default results database of every verb that takes --db.
inline const char* kDefaultDatabase = "results/dmdbench.sqlite";

// Runs the verb argv[1] from `impls` (usage on no verb or --help; one sentence and a non-zero exit on a user
// mistake). A verb that is not in `impls` goes to `fallback` when given, else is refused.
int dispatch(int argc, char** argv, const std::vector<VerbImpl>& impls, int (*fallback)(int, char**) = nullptr);

}  // namespace dmdbench::cli
