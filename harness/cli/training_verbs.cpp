// `train` (one run with progress), `evaluate` (a reference checkpoint on an MMSA pickle) and `run-ablation`.
#include <fmt/format.h>
#include <unistd.h>

#include <iostream>

#include "ablations/variants.h"
#include "harness/cli/progress.h"
#include "harness/cli/sweep.h"
#include "harness/cli/verb.h"
#include "harness/data/dataset.h"
#include "harness/io/checkpoint.h"
#include "harness/io/output_file.h"
#include "harness/training/device.h"
#include "harness/training/evaluation.h"
#include "harness/training/trainer.h"

namespace dmdbench::cli {

namespace {

void print_metrics(std::ostream& out, const results::MetricValues& values) {
  std::string line;
  for (const auto& [name, value] : values.all()) {
    const auto* m = results::find_metric(name);
    line += fmt::format("  {} {}{}", m->label, results::format_stored(*m, value), m->percent ? "%" : "");
  }
  out << line << "\n";
}

void print_edges(std::ostream& out, const std::string& space, const EdgeMatrix& m) {
  static const char* names[3] = {"l", "v", "a"};
  out << fmt::format("  {} edges (from -> to; rows from, columns to)\n        to l     to v     to a\n", space);
  for (int f = 0; f < 3; ++f)
    out << fmt::format("  {}  {:8.4f} {:8.4f} {:8.4f}\n", names[f], m[f][0], m[f][1], m[f][2]);
}

int train_verb(const VerbArgs& va) {
  std::string dataset = "synthetic-mosi", profile = "quick", variant = "dmd", device = "auto", checkpoint_out;
  int64_t seed = 1111;
  int threads = 1;
  bool fast = false;
  std::vector<std::string> sets;
  po::options_description desc("options");
  desc.add_options()("dataset", po::value(&dataset)->default_value(dataset),
                     "synthetic-mosi | synthetic-mosei | mosi:PATH | mosei:PATH")(
      "seed", po::value(&seed)->default_value(seed), "run seed (initialisation, dropout, shuffling)")(
      "profile", po::value(&profile)->default_value(profile), "smoke | quick | paper")(
      "variant", po::value(&variant)->default_value(variant), "a registry variant (default: full DMD)")(
      "device", po::value(&device)->default_value(device), "auto | cpu | cuda[:N]")(
      "threads", po::value(&threads)->default_value(threads), "intra-op threads")(
      "fast", po::bool_switch(&fast), "CUDA: allow TF32 and cuDNN autotuning (recorded)")(
      "checkpoint-out", po::value(&checkpoint_out), "write the best weights as a reference state_dict zip")(
      "set", po::value(&sets)->composing(), "override a hyperparameter: key=value (repeatable)");
  po::variables_map vm;
  if (!parse("train [options]", desc, va.args, vm)) return 0;
  if (seed < 0) throw po::error(fmt::format("--seed is {}, expected 0 or more", seed));
  if (threads < 1) throw po::error(fmt::format("--threads is {}, expected 1 or more", threads));
  parse_dataset_spec(dataset).require_file();

  set_threads(threads);
  const DeviceSetup dev = setup_device(device, fast);
  const Config cfg = ablations::resolve_config(parse_dataset_spec(dataset).known_family(), variant, profile, sets);
  LoadOptions lo;
  lo.zero_nan = cfg.flag("zero_nan");
  const Dataset data =
      open_dataset(dataset, lo, cfg.num("synthetic_scale"), static_cast<uint64_t>(cfg.integer("synthetic_seed")));
  std::cout << fmt::format("dmdbench train: {} on {} ({} / {} / {} samples), seed {}, profile {}, {}, {} thread(s)\n",
                           variant, data.name, data.train.size(), data.valid.size(), data.test.size(), seed, profile,
                           dev.name, current_threads());
  std::cout << "resolved configuration:\n" << cfg.pretty();

  EpochProgress progress(std::cout, isatty(STDOUT_FILENO), cfg.integer("max_epochs"), cfg.integer("early_stop"));
  TrainHooks hooks;
  hooks.on_batch = [&](int64_t e, int64_t b, int64_t n) { progress.batch(e, b, n); };
  hooks.on_epoch = [&](const EpochReport& r) { progress.epoch(r); };
  const TrainResult r = train_run(data, cfg, seed, dev.device, hooks);

  if (!r.graph_check.empty()) std::cout << "  " << r.graph_check << "\n";
  std::cout << fmt::format("best epoch {} (valid loss {:.4f}); test metrics with its weights:\n", r.best_epoch,
                           r.best_valid_loss);
  print_metrics(std::cout, r.test);
  for (std::size_t s = 0; s < r.edges.size(); ++s) print_edges(std::cout, r.edge_spaces[s], r.edges[s]);
  for (const auto& t : r.throughput)
    std::cout << fmt::format("  {} throughput: {:.1f} samples/s (batch {}, p50 {:.1f} ms, p95 {:.1f} ms)\n", t.phase,
                             t.samples_per_s, t.batch_size, t.latency_p50_ms, t.latency_p95_ms);
  std::cout << fmt::format("  parameters {}, peak memory {:.1f} MiB, wall {:.1f} s\n", r.parameters,
                           r.peak_memory_bytes / 1048576.0, r.wall_seconds);
  if (!checkpoint_out.empty()) {
    write_checkpoint(checkpoint_out, r.best_network_state);
    std::cout << "wrote the best weights (reference state_dict format) to " << checkpoint_out << "\n";
  }
  return 0;
}

int evaluate_verb(const VerbArgs& va) {
  std::string checkpoint, data_path, family, split_name = "test", predictions, device = "auto";
  int threads = 1;
  bool zero_nan = false;
  po::options_description desc("options");
  desc.add_options()("checkpoint", po::value(&checkpoint)->required(), "reference state_dict (torch.save zip)")(
      "data", po::value(&data_path)->required(), "MMSA feature pickle")(
      "config", po::value(&family)->required(), "mosi | mosei")(
      "split", po::value(&split_name)->default_value(split_name), "train | valid | test")(
      "predictions", po::value(&predictions), "write a per-sample CSV here")(
      "device", po::value(&device)->default_value(device), "auto | cpu | cuda[:N]")(
      "threads", po::value(&threads)->default_value(threads), "intra-op threads")(
      "zero-nan", po::bool_switch(&zero_nan), "replace NaN features by 0 instead of refusing the file");
  po::variables_map vm;
  if (!parse("evaluate --checkpoint PATH --data PATH --config mosi|mosei [options]", desc, va.args, vm)) return 0;
  if (threads < 1) throw po::error(fmt::format("--threads is {}, expected 1 or more", threads));

  set_threads(threads);
  const DeviceSetup dev = setup_device(device);
  LoadOptions lo;
  lo.zero_nan = zero_nan;
  const Dataset data = load_mmsa(data_path, family, lo);
  const Split& split = data.split(split_name);
  // The reference architecture from the configuration table, sized from the data, as `train` builds it.
  auto model = build_trainable(reference_config(family, "dmd"), data.dims(), dev.device);
  const StateDict weights = read_checkpoint(checkpoint);
  const std::string conversions =
      check_loadable(weights, model->network_state(), model->network_parameter_names(), checkpoint);
  if (!conversions.empty()) std::cout << conversions << "\n";
  model->load_network_state(weights);
  EvalOptions eo;  // file order, the reference's batch size
  eo.batch_size = 16, eo.with_heads = true;
  const EvalPass pass = evaluate_split(*model, split, dev.device, eo);

  const results::MetricValues m = results::regression_metrics(pass.predictions, pass.labels);
  std::cout << fmt::format("evaluated {} on the {} split of {} ({} samples, {}):\n", checkpoint, split_name, data_path,
                           split.size(), dev.name);
  print_metrics(std::cout, m);
  if (!predictions.empty()) {
    std::string csv = "id,label,prediction";
    for (const auto& [name, values] : pass.heads) csv += "," + name;
    csv += '\n';
    for (std::size_t r = 0; r < pass.predictions.size(); ++r) {
      csv += split.ids.at(pass.indices[r]) + fmt::format(",{:.9g},{:.9g}", pass.labels[r], pass.predictions[r]);
      for (const auto& [name, values] : pass.heads) csv += fmt::format(",{:.9g}", values[r]);
      csv += '\n';
    }
    write_file_atomically(predictions, csv);
    std::cout << "wrote predictions to " << predictions << "\n";
  }
  return 0;
}

int ablation_verb(const VerbArgs& va) {
  AblationArgs a;
  a.command_line = va.command_line;
  a.db = kDefaultDatabase;
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
      "slurm", po::bool_switch(&a.slurm), "submit to Slurm as an array of shards balanced by cost, follow, merge, report")(
      "slurm-opt", po::value(&a.slurm_opts)->composing(), "--slurm: sbatch options, e.g. \"--partition=gpu --time=4:00:00\"")(
      "shards", po::value(&a.shards)->default_value(0), "--slurm: number of shards (array tasks; 0: one per run)")(
      "no-wait", po::bool_switch(&a.no_wait), "--slurm: return after submitting (follow with dmdbench slurm status)")(
      "runs", po::value(&a.runs), "run only these plan entries (comma-separated indices; a Slurm shard task's list)")(
      "worker", po::value(&a.worker)->default_value(-1), "internal: run one plan entry in this process")(
      "owner", po::value(&a.owner), "internal: the claim of the sweep that started this worker");
  po::variables_map vm;
  if (!parse("run-ablation [options]", desc, va.args, vm)) return 0;
  return run_ablation(a);
}

}  // namespace

std::vector<VerbImpl> training_verbs() {
  return {{"run-ablation", ablation_verb}, {"train", train_verb}, {"evaluate", evaluate_verb}};
}

}  // namespace dmdbench::cli
