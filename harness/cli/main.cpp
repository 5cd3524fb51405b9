// dmdbench: the command line. Parses options with Boost.Program_options and dispatches to one verb; nothing else.
#include <boost/program_options.hpp>
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <fmt/format.h>

#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "harness/cli/commands.h"
#include "harness/data/data_info.h"
#include "reports/regress.h"
#include "reports/report.h"

namespace po = boost::program_options;
using namespace dmdbench;

namespace {

struct Verb {
  std::string name, summary;
  std::function<int(const std::vector<std::string>& args, const std::string& command_line)> run;
};

// Parses `args` against `desc` (+ positional names); prints help and returns false on --help.
bool parse(const std::string& usage, po::options_description& desc, const std::vector<std::string>& args,
           po::variables_map& vm, const po::positional_options_description* pos = nullptr) {
  desc.add_options()("help,h", "show this help");
  auto parser = po::command_line_parser(args).options(desc);
  if (pos) parser.positional(*pos);
  po::store(parser.run(), vm);
  if (vm.count("help")) {
    std::cout << "usage: dmdbench " << usage << "\n" << desc;
    return false;
  }
  po::notify(vm);
  return true;
}

int data_verb(const std::vector<std::string>& args, const std::string&) {
  po::options_description desc("options");
  std::string sub, target;
  desc.add_options()("subcommand", po::value(&sub)->required(), "info | inspect-checkpoint")(
      "target", po::value(&target)->required(), "PATH or synthetic-NAME (info), PATH (inspect-checkpoint)");
  po::positional_options_description pos;
  pos.add("subcommand", 1).add("target", 1);
  po::variables_map vm;
  if (!parse("data info PATH|synthetic-NAME | data inspect-checkpoint PATH", desc, args, vm, &pos)) return 0;
  if (sub == "info") return data_info(target, std::cout);
  if (sub == "inspect-checkpoint") return inspect_checkpoint(target, std::cout);
  throw po::error(fmt::format("unknown data subcommand '{}', expected info or inspect-checkpoint", sub));
}

int evaluate_verb(const std::vector<std::string>& args, const std::string&) {
  EvaluateArgs a;
  po::options_description desc("options");
  desc.add_options()("checkpoint", po::value(&a.checkpoint)->required(), "reference state_dict (torch.save zip)")(
      "data", po::value(&a.data)->required(), "MMSA feature pickle")(
      "config", po::value(&a.config)->required(), "mosi | mosei")(
      "split", po::value(&a.split)->default_value(a.split), "train | valid | test")(
      "predictions", po::value(&a.predictions), "write a per-sample CSV here")(
      "device", po::value(&a.device)->default_value(a.device), "auto | cpu | cuda[:N]")(
      "threads", po::value(&a.threads)->default_value(a.threads), "intra-op threads")(
      "zero-nan", po::bool_switch(&a.zero_nan), "replace NaN features by 0 instead of refusing the file");
  po::variables_map vm;
  if (!parse("evaluate --checkpoint PATH --data PATH --config mosi|mosei [options]", desc, args, vm)) return 0;
  return cmd_evaluate(a);
}

int train_verb(const std::vector<std::string>& args, const std::string&) {
  TrainArgs a;
  po::options_description desc("options");
  desc.add_options()("dataset", po::value(&a.dataset)->default_value(a.dataset),
                     "synthetic-mosi | synthetic-mosei | mosi:PATH | mosei:PATH")(
      "seed", po::value(&a.seed)->default_value(a.seed), "run seed (initialisation, dropout, shuffling)")(
      "profile", po::value(&a.profile)->default_value(a.profile), "smoke | quick | paper")(
      "variant", po::value(&a.variant)->default_value(a.variant), "a registry variant (default: full DMD)")(
      "device", po::value(&a.device)->default_value(a.device), "auto | cpu | cuda[:N]")(
      "threads", po::value(&a.threads)->default_value(a.threads), "intra-op threads")(
      "fast", po::bool_switch(&a.fast), "CUDA: allow TF32 and cuDNN autotuning (recorded)")(
      "checkpoint-out", po::value(&a.checkpoint_out), "write the best weights as a reference state_dict zip")(
      "set", po::value(&a.sets)->composing(), "override a hyperparameter: key=value (repeatable)");
  po::variables_map vm;
  if (!parse("train [options]", desc, args, vm)) return 0;
  return cmd_train(a);
}

int ablation_verb(const std::vector<std::string>& args, const std::string& command_line) {
  AblationArgs a;
  a.command_line = command_line;
  po::options_description desc("options");
  desc.add_options()("dataset", po::value(&a.dataset)->default_value(a.dataset),
                     "synthetic-mosi | synthetic-mosei | mosi:PATH | mosei:PATH")(
      "variants", po::value(&a.variants)->default_value(a.variants), "all | comma-separated registry names")(
      "seeds", po::value(&a.seeds)->default_value(a.seeds), "comma-separated seeds")(
      "profile", po::value(&a.profile)->default_value(a.profile), "smoke | quick | paper")(
      "device", po::value(&a.device)->default_value(a.device), "auto | cpu | cuda[:N]")(
      "jobs", po::value(&a.jobs)->default_value(0), "parallel runs, one intra-op thread each (0: number of cores)")(
      "db", po::value(&a.db)->default_value(a.db), "SQLite results database")(
      "set", po::value(&a.sets)->composing(), "override a hyperparameter: key=value (repeatable)")(
      "shard", po::value(&a.shard), "i/N: run plan entries with index % N == i (default: Slurm array variables)")(
      "force", po::bool_switch(&a.force), "rerun runs that are already completed")(
      "fast", po::bool_switch(&a.fast), "CUDA: allow TF32 and cuDNN autotuning (recorded)")(
      "report", po::value(&a.report)->default_value(a.report), "write the Markdown report here at the end")(
      "no-report", po::bool_switch(&a.no_report), "do not write the report")(
      "emit-sbatch", po::value(&a.emit_sbatch)->default_value(0), "print a Slurm array script for N shards and exit")(
      "worker", po::value(&a.worker)->default_value(-1), "internal: run one plan entry in this process");
  po::variables_map vm;
  if (!parse("run-ablation [options]", desc, args, vm)) return 0;
  return cmd_run_ablation(a);
}

int ls_verb(const std::vector<std::string>& args, const std::string&) {
  std::string db = "results/dmdbench.sqlite";
  po::options_description desc("options");
  desc.add_options()("db", po::value(&db)->default_value(db), "SQLite results database");
  po::variables_map vm;
  if (!parse("ls [--db PATH]", desc, args, vm)) return 0;
  return cmd_ls(db);
}

int merge_verb(const std::vector<std::string>& args, const std::string&) {
  std::vector<std::string> files;
  po::options_description desc("options");
  desc.add_options()("files", po::value(&files)->multitoken()->required(), "OUT IN...");
  po::positional_options_description pos;
  pos.add("files", -1);
  po::variables_map vm;
  if (!parse("merge OUT IN...", desc, args, vm, &pos)) return 0;
  if (files.size() < 2) throw po::error("merge needs an output database and at least one input");
  return cmd_merge(files[0], std::vector<std::string>(files.begin() + 1, files.end()));
}

int report_verb(const std::vector<std::string>& args, const std::string& command_line) {
  reports::ReportOptions o;
  o.command = command_line;
  po::options_description desc("options");
  desc.add_options()("db", po::value(&o.db_path)->default_value("results/dmdbench.sqlite"), "SQLite results database")(
      "out", po::value(&o.out_path)->default_value(o.out_path), "Markdown file to write (figures go beside it)")(
      "experiment", po::value(&o.experiment)->default_value(o.experiment), "experiment id or 'latest'");
  po::variables_map vm;
  if (!parse("report [--db PATH] [--out PATH] [--experiment ID|latest]", desc, args, vm)) return 0;
  return cmd_report(o);
}

int regress_verb(const std::vector<std::string>& args, const std::string&) {
  reports::RegressOptions o;
  std::string db;
  po::options_description desc("options");
  desc.add_options()("db", po::value(&db)->default_value("results/dmdbench.sqlite"), "SQLite results database")(
      "baseline", po::value(&o.baseline_path), "baseline JSON file")(
      "update-baseline", po::bool_switch(&o.update_baseline), "write the baseline from the current results")(
      "against", po::value(&o.against), "published: compare real-data runs with the published numbers")(
      "experiment", po::value(&o.experiment)->default_value("latest"), "experiment id, 'latest' or 'all'")(
      "dataset", po::value(&o.dataset), "which results (default: the baseline's dataset)")(
      "profile", po::value(&o.profile), "which results (default: the baseline's profile)")(
      "paper-tolerance", po::value(&o.paper_tolerance)->default_value(o.paper_tolerance),
      "--against published: points allowed below the paper")(
      "rerun-tolerance", po::value(&o.rerun_tolerance)->default_value(o.rerun_tolerance),
      "--against published: points allowed below the mean of independent reruns");
  po::variables_map vm;
  if (!parse("regress --db PATH --baseline FILE.json [--update-baseline] [--against published]", desc, args, vm))
    return 0;
  return cmd_regress(db, o);
}

int bench_verb(const std::vector<std::string>& args, const std::string& command_line) {
  bench::BenchArgs a;
  a.command_line = command_line;
  std::vector<std::string> compare;
  po::options_description desc("options");
  desc.add_options()("filter", po::value(&a.filter)->default_value(a.filter), "regular expression over case names")(
      "db", po::value(&a.db)->default_value(a.db), "SQLite results database")(
      "repetitions", po::value(&a.repetitions)->default_value(a.repetitions), "repetitions per case")(
      "min-time", po::value(&a.min_time)->default_value(a.min_time), "seconds per repetition")(
      "device", po::value(&a.device)->default_value(a.device), "auto | cpu | cuda[:N]")(
      "list", po::bool_switch(&a.list), "list the cases and exit")(
      "compare", po::value(&compare)->multitoken(), "BASE_ID NEW_ID: two stored sets side by side");
  po::variables_map vm;
  if (!parse("bench [--filter REGEX] [--db PATH] [--repetitions N] | bench --compare BASE NEW", desc, args, vm))
    return 0;
  if (!compare.empty()) {
    if (compare.size() != 2) throw po::error("--compare takes two benchmark set ids");
    return bench::compare_sets(a.db, compare[0], compare[1], std::cout);
  }
  return bench::run_suite(a);
}

const std::vector<Verb>& verbs() {
  static const std::vector<Verb> v = {
      {"run-ablation", "the main job: every variant x seeds, stored in SQLite, then the report", ablation_verb},
      {"train", "train one run with the reference recipe", train_verb},
      {"evaluate", "evaluate a checkpoint written by the Python reference on an MMSA pickle", evaluate_verb},
      {"report", "write the Markdown report (tables, significance, figures) from the database", report_verb},
      {"regress", "compare stored results with a baseline or the published numbers; non-zero on regression",
       regress_verb},
      {"bench", "throughput benchmarks (Google Benchmark), stored in the database", bench_verb},
      {"ls", "list stored runs", ls_verb},
      {"merge", "merge shard databases into one (idempotent)", merge_verb},
      {"data", "data info PATH|synthetic-NAME, data inspect-checkpoint PATH", data_verb},
  };
  return v;
}

void usage(std::ostream& out) {
  out << "usage: dmdbench <verb> [options]   (dmdbench <verb> --help for its options)\n\nverbs:\n";
  for (const auto& v : verbs()) out << fmt::format("  {:<14}{}\n", v.name, v.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(std::cerr);
    return 2;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    usage(std::cout);
    return 0;
  }
  // LibTorch's OpenMP pool and OpenBLAS's pthread pool both spin while idle; on all cores they take the cores from
  // each other (a 2-thread training step ran 2.7x slower than 1 thread). libgomp reads OMP_WAIT_POLICY when it
  // loads, so set it and start again once; workers inherit it.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: go on with spinning threads
  }
  // Keep glibc malloc from handing tensor-sized blocks back to the kernel after every step: a training step frees
  // and reallocates the same ~100 MB of activations, and each fresh mapping costs page faults (a third fewer).
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
  std::string command_line = "dmdbench";
  for (int i = 1; i < argc; ++i) command_line += std::string(" ") + argv[i];
  for (const auto& v : verbs()) {
    if (v.name != name) continue;
    try {
      return v.run(std::vector<std::string>(argv + 2, argv + argc), command_line);
    } catch (const po::error& e) {
      std::cerr << "dmdbench " << name << ": " << e.what() << " (see dmdbench " << name << " --help)\n";
      return 2;
    } catch (const std::exception& e) {
      std::string msg = e.what();
      std::cerr << "dmdbench " << name << ": " << msg.substr(0, msg.find('\n')) << "\n";
      return 1;
    }
  }
  std::cerr << fmt::format("dmdbench: unknown verb '{}'\n", name);
  usage(std::cerr);
  return 2;
}
