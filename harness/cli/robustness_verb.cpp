// `robustness`: the robustness grid for runs already completed, from their kept best weights (run-ablation
// --keep-checkpoints). Only the grid points a run lacks are evaluated; each run's rows are one transaction.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include "harness/cli/sweep.h"
#include "harness/cli/verb.h"
#include "harness/data/dataset.h"
#include "harness/io/checkpoint.h"
#include "harness/io/sha256.h"
#include "harness/training/device.h"
#include "harness/training/robustness.h"
#include "harness/training/trainer.h"
#include "results/store.h"

namespace dmdbench::cli {

namespace {

int robustness_verb(const VerbArgs& va) {
  std::string db = kDefaultDatabase, grid_name = "default", experiment = "all", device = "auto";
  int threads = 1;
  po::options_description desc("options");
  desc.add_options()("db", po::value(&db)->default_value(db), "SQLite results database")(
      "grid", po::value(&grid_name)->default_value(grid_name), "default | full")(
      "experiment", po::value(&experiment)->default_value(experiment), "all | an experiment id")(
      "device", po::value(&device)->default_value(device), "auto | cpu | cuda[:N]")(
      "threads", po::value(&threads)->default_value(threads), "intra-op threads");
  po::variables_map vm;
  if (!parse("robustness [--db PATH] [--grid default|full]", desc, va.args, vm)) return 0;
  if (threads < 1) throw po::error(fmt::format("--threads is {}, expected 1 or more", threads));
  std::vector<results::Perturbation> grid;
  try {
    grid = results::robustness_grid(grid_name);
  } catch (const std::invalid_argument& e) {
    throw po::error(e.what());
  }
  if (!std::filesystem::exists(db)) throw ConfigError(fmt::format("database {} does not exist", db));

  set_threads(threads);
  const DeviceSetup dev = setup_device(device);
  results::Store store(db);
  std::map<std::string, Dataset> datasets;  // by (dataset, scale, seed)
  int evaluated = 0, complete = 0, unavailable = 0;
  for (const auto& run : store.runs(experiment == "all" ? "" : experiment)) {
    if (run.status != results::RunStatus::Completed) continue;
    const std::string who = fmt::format("run {} ({} seed {})", run.spec.run_id, run.spec.variant, run.spec.seed);
    std::set<std::pair<std::string, double>> have;
    for (const auto& r : store.robustness(run.spec.run_id)) have.insert({r.perturbation, r.level});
    std::vector<results::Perturbation> todo;
    for (const auto& p : grid)
      if (!have.count({p.family(), p.level})) todo.push_back(p);
    if (todo.empty()) {
      ++complete;
      continue;
    }
    const auto ckpt = store.checkpoint(run.spec.run_id);
    if (!ckpt) {
      std::cout << fmt::format("{}: its best weights were not kept (run-ablation --keep-checkpoints keeps them), so "
                               "its robustness cannot be evaluated\n", who);
      ++unavailable;
      continue;
    }
    const std::string path = resolve_checkpoint_path(db, ckpt->path);
    if (!std::filesystem::exists(path) || sha256_file(path) != ckpt->sha256) {
      std::cout << fmt::format("{}: its kept weights {} are {}, so its robustness cannot be evaluated\n", who, path,
                               std::filesystem::exists(path) ? "not the file that was stored (SHA-256 differs)"
                                                             : "missing");
      ++unavailable;
      continue;
    }
    const Config cfg(nlohmann::ordered_json::parse(run.spec.config_json));
    const std::string key = fmt::format("{}|{}|{}", run.spec.dataset, cfg.num("synthetic_scale"),
                                        cfg.integer("synthetic_seed"));
    if (!datasets.count(key)) {
      LoadOptions lo;
      lo.zero_nan = cfg.flag("zero_nan");
      datasets[key] = open_dataset(run.spec.dataset, lo, cfg.num("synthetic_scale"),
                                   static_cast<uint64_t>(cfg.integer("synthetic_seed")));
    }
    const Dataset& data = datasets[key];
    auto model = build_trainable(cfg, data.dims(), dev.device);
    model->load_network_state(read_checkpoint(path));
    std::vector<results::RobustnessRow> rows;
    for (const auto& p : evaluate_robustness(*model, data, dev.device, test_eval_options(cfg, run.spec.seed), todo,
                                             run.spec.seed))
      for (const auto& r : robustness_rows(p)) rows.push_back(r);
    store.add_robustness(run.spec.run_id, rows);
    std::cout << fmt::format("{}: {} grid point(s) evaluated\n", who, todo.size());
    ++evaluated;
  }
  std::cout << fmt::format("robustness ({} grid): {} run(s) evaluated, {} already complete, {} without kept weights\n",
                           grid_name, evaluated, complete, unavailable);
  return unavailable > 0 ? 1 : 0;
}

}  // namespace

std::vector<VerbImpl> robustness_verbs() { return {{"robustness", robustness_verb}}; }

}  // namespace dmdbench::cli
