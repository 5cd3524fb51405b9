#include "harness/cli/verb.h"

#include <fmt/format.h>

#include <cstdint>
#include <iostream>

namespace dmdbench::cli {

const std::vector<Verb>& verbs() {
  static const std::vector<Verb> v = {
      {"run-ablation", "the main job: every variant x seeds, stored in SQLite, then the report", true},
      {"train", "train one run with the reference recipe", true},
      {"evaluate", "evaluate a checkpoint written by the Python reference on an MMSA pickle", true},
      {"report", "write the Markdown report (tables, significance, figures) from the database", false},
      {"regress", "compare stored results with a baseline or the published numbers; non-zero on regression", false},
      {"robustness", "evaluate completed runs' kept best weights under missing and noisy modalities", true},
      {"bench", "throughput benchmarks (Google Benchmark), stored in the database", true},
      {"ls", "list stored runs", false},
      {"merge", "merge shard databases into one (idempotent)", false},
      {"slurm", "slurm status|collect|resubmit EXPERIMENT_DIR: a sweep submitted with run-ablation --slurm", false},
      {"data", "data info PATH|synthetic-NAME, data inspect-checkpoint PATH", true},
  };
  return v;
}

bool parse(const std::string& usage, po::options_description& desc, const std::vector<std::string>& args,
           po::variables_map& vm, const po::positional_options_description* pos) {
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

std::string format_duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

namespace {

void usage(std::ostream& out) {
  out << "usage: dmdbench <verb> [options]   (dmdbench <verb> --help for its options)\n\nverbs:\n";
  for (const auto& v : verbs()) out << fmt::format("  {:<14}{}\n", v.name, v.summary);
}

}  // namespace

int dispatch(int argc, char** argv, const std::vector<VerbImpl>& impls, int (*fallback)(int, char**)) {
  if (argc < 2) {
    usage(std::cerr);
    return 2;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    usage(std::cout);
    return 0;
  }
  std::string command_line = "dmdbench";
  for (int i = 1; i < argc; ++i) command_line += std::string(" ") + argv[i];
  for (const auto& v : impls) {
    if (v.name != name) continue;
    try {
      return v.run({std::vector<std::string>(argv + 2, argv + argc), command_line});
    } catch (const po::error& e) {
      std::cerr << "dmdbench " << name << ": " << e.what() << " (see dmdbench " << name << " --help)\n";
      return 2;
    } catch (const std::exception& e) {
      const std::string msg = e.what();
      std::cerr << "dmdbench " << name << ": " << msg.substr(0, msg.find('\n')) << "\n";
      return 1;
    }
  }
  for (const auto& v : verbs())
    if (v.name == name && fallback) return fallback(argc, argv);
  std::cerr << fmt::format("dmdbench: unknown verb '{}'\n", name);
  usage(std::cerr);
  return 2;
}

}  // namespace dmdbench::cli
