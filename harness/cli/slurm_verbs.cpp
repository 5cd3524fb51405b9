// `slurm status|collect|resubmit EXPERIMENT_DIR`: a sweep submitted with run-ablation --slurm (no LibTorch).
#include <sstream>

#include "harness/cli/slurm.h"
#include "harness/cli/verb.h"

namespace dmdbench::cli {

namespace {

int slurm_verb(const VerbArgs& a) {
  std::string action, dir;
  std::vector<std::string> opts;
  bool wait = false;
  po::options_description desc("options");
  desc.add_options()("action", po::value(&action)->required(), "status | collect | resubmit")(
      "experiment", po::value(&dir)->required(), "the experiment folder run-ablation --slurm printed")(
      "wait", po::bool_switch(&wait), "status, resubmit: follow the jobs to the end, then collect and report")(
      "slurm-opt", po::value(&opts)->composing(), "resubmit: sbatch options instead of the recorded ones");
  po::positional_options_description pos;
  pos.add("action", 1).add("experiment", 1);
  po::variables_map vm;
  if (!parse("slurm status|collect|resubmit EXPERIMENT_DIR [options]", desc, a.args, vm, &pos)) return 0;
  std::vector<std::string> sbatch;
  for (const auto& o : opts) {
    std::istringstream in(o);
    for (std::string w; in >> w;) sbatch.push_back(w);
  }
  if (action == "status") return slurm::status(dir, wait);
  if (action == "collect") return slurm::collect(dir);
  if (action == "resubmit") return slurm::resubmit(dir, sbatch, wait);
  throw po::error("unknown action '" + action + "', expected status, collect or resubmit");
}

}  // namespace

std::vector<VerbImpl> slurm_verbs() { return {{"slurm", slurm_verb}}; }

}  // namespace dmdbench::cli
