// `train` (one run with progress), `evaluate` (a reference checkpoint on an MMSA pickle) and `run-ablation`.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <optional>

#include "ablations/variants.h"
#include "harness/cli/progress.h"
#include "harness/cli/sweep.h"
#include "harness/cli/verb.h"
#include "harness/data/dataset.h"
#include "harness/io/bert_folder.h"
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

// The folder --bert names, loaded when the configuration reads text through a BERT (nothing otherwise).
std::optional<BertFolder> text_model_for(const Config& cfg, const std::string& dir) {
  if (dir.empty() || !uses_text_model(cfg)) return std::nullopt;
  return load_bert_folder(dir);
}

void print_text_encoder(std::ostream& out, const Config& cfg, const Dataset& data, const BertFolder* bert) {
  const FeatureDims d = data.dims();
  out << fmt::format("input widths: text {} / audio {} / vision {} (from the data)\n", bert ? bert->config.hidden : d.text,
                     d.audio, d.vision);
  if (!bert) {
    out << fmt::format("text encoder: {} ({}-d text features)\n", cfg.str("text_encoder"), data.dims().text);
    return;
  }
  out << fmt::format("text encoder: {} ({}, sha256 {}; {} layers, hidden {}, vocabulary {}{})\n",
                     cfg.str("text_encoder"), bert->weights_path, bert->weights_sha256.substr(0, 16),
                     bert->config.layers, bert->config.hidden, bert->config.vocab,
                     bert->note.empty() ? "" : "; " + bert->note);
}

void print_edges(std::ostream& out, const std::string& space, const EdgeMatrix& m) {
  static const char* names[3] = {"l", "v", "a"};
  out << fmt::format("  {} edges (from -> to; rows from, columns to)\n        to l     to v     to a\n", space);
  for (int f = 0; f < 3; ++f)
    out << fmt::format("  {}  {:8.4f} {:8.4f} {:8.4f}\n", names[f], m[f][0], m[f][1], m[f][2]);
}

int train_verb(const VerbArgs& va) {
  std::string dataset = "synthetic-mosi", profile, variant = "dmd", device = "auto", checkpoint_out, bert_dir;
  int64_t seed = 1111;
  int threads = 1;
  bool fast = false;
  std::vector<std::string> sets;
  po::options_description desc("options");
  desc.add_options()("dataset", po::value(&dataset)->default_value(dataset),
                     "synthetic-mosi[-unaligned] | synthetic-mosei[-unaligned] | mosi:PATH | mosei:PATH")(
      "seed", po::value(&seed)->default_value(seed), "run seed (initialisation, dropout, shuffling)")(
      "profile", po::value(&profile),
      "smoke | quick | paper (default: paper on real data, quick on synthetic)")(
      "bert", po::value(&bert_dir), "Hugging Face BERT folder (config.json + weights): the text encoder")(
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
  const DatasetSpec spec = parse_dataset_spec(dataset);
  if (profile.empty()) profile = default_profile(spec);
  const Config cfg =
      ablations::resolve_config(spec.known_family(), variant, profile, sets, !bert_dir.empty());
  require_text_model(cfg, !bert_dir.empty());
  const std::optional<BertFolder> bert = text_model_for(cfg, bert_dir);
  LoadOptions lo;
  lo.zero_nan = cfg.flag("zero_nan");
  const Dataset data =
      open_dataset(dataset, lo, cfg.num("synthetic_scale"), static_cast<uint64_t>(cfg.integer("synthetic_seed")));
  std::cout << fmt::format("dmdbench train: {} on {} ({} / {} / {} samples), seed {}, profile {}, {}, {} thread(s)\n",
                           variant, data.name, data.train.size(), data.valid.size(), data.test.size(), seed, profile,
                           dev.name, current_threads());
  print_text_encoder(std::cout, cfg, data, bert ? &*bert : nullptr);
  std::cout << "resolved configuration:\n" << cfg.pretty();

  EpochProgress progress(std::cout, isatty(STDOUT_FILENO), cfg.integer("max_epochs"), cfg.integer("early_stop"));
  TrainHooks hooks;
  hooks.on_batch = [&](int64_t e, int64_t b, int64_t n) { progress.batch(e, b, n); };
  hooks.on_epoch = [&](const EpochReport& r) { progress.epoch(r); };
  const TrainResult r = train_run(data, cfg, seed, dev.device, hooks, bert ? &*bert : nullptr);

  if (!r.graph_check.empty()) std::cout << "  " << r.graph_check << "\n";
  std::cout << fmt::format("best epoch {} (valid loss {:.4f}); test metrics with its weights:\n", r.best_epoch,
                           r.best_valid_loss);
  print_metrics(std::cout, r.test);
  if (!r.test_shuffles.empty()) {
    // The same weights in other test batch orders (spec §1.11): the range of each summary metric.
    std::string line;
    for (const auto& def : results::metric_defs()) {
      if (!def.in_summary) continue;
      double lo = r.test[def.name], hi = lo;
      for (const auto& s : r.test_shuffles) lo = std::min(lo, s.metrics[def.name]), hi = std::max(hi, s.metrics[def.name]);
      line += fmt::format("  {} {}–{}", def.label, results::format_stored(def, lo), results::format_stored(def, hi));
    }
    std::cout << fmt::format("same weights, {} test batch orders (range):{}\n", r.test_shuffles.size() + 1, line);
  }
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
  std::string checkpoint, data_path, family, split_name = "test", predictions, device = "auto", bert_dir;
  int threads = 1;
  bool zero_nan = false;
  po::options_description desc("options");
  desc.add_options()("checkpoint", po::value(&checkpoint)->required(),
                     "reference state_dict (torch.save zip)")("data", po::value(&data_path)->required(),
                                                              "MMSA feature pickle")(
      "config", po::value(&family)->required(), "mosi | mosei")(
      "split", po::value(&split_name)->default_value(split_name), "train | valid | test")(
      "predictions", po::value(&predictions), "write a per-sample CSV here")(
      "bert", po::value(&bert_dir), "Hugging Face BERT folder: the checkpoint's text model reads text_bert")(
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
  // The reference architecture from the configuration table, sized from the data, as `train` builds it: with
  // --bert its text model (fine-tuned or frozen evaluate alike), without it the text features.
  Config cfg = reference_config(family, "dmd");
  if (bert_dir.empty()) cfg.set("text_encoder", std::string("features"));
  const std::optional<BertFolder> bert = text_model_for(cfg, bert_dir);
  if (bert) check_text_bert(data, bert->config.vocab, bert->config.type_vocab);
  auto model = build_trainable(cfg, data.dims(), dev.device, bert ? &*bert : nullptr);
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
                     "synthetic-mosi[-unaligned] | synthetic-mosei[-unaligned] | mosi:PATH | mosei:PATH")(
      "variants", po::value(&a.variants)->default_value(a.variants),
      "all | paper-table3 (the paper's Table 3 rows) | comma-separated registry names")(
      "seeds", po::value(&a.seeds)->default_value(a.seeds), "comma-separated seeds")(
      "profile", po::value(&a.profile),
      "smoke | quick | paper (default: paper on real data, quick on synthetic)")(
      "bert", po::value(&a.bert), "Hugging Face BERT folder (config.json + weights): DMD's text encoder")(
      "device", po::value(&a.device)->default_value(a.device), "auto | cpu | cuda[:N]")(
      "jobs", po::value(&a.jobs)->default_value(0),
      "parallel runs, one intra-op thread each (0: number of cores)")(
      "db", po::value(&a.db)->default_value(a.db), "SQLite results database")(
      "set", po::value(&a.sets)->composing(), "override a hyperparameter: key=value (repeatable)")(
      "shard", po::value(&a.shard),
      "i/N: run plan entries with index % N == i (default: Slurm array variables)")(
      "force", po::bool_switch(&a.force), "rerun runs that are already completed")(
      "fast", po::bool_switch(&a.fast), "CUDA: allow TF32 and cuDNN autotuning (recorded)")(
      "report", po::value(&a.report)->default_value(a.report), "write the Markdown report here at the end")(
      "no-report", po::bool_switch(&a.no_report), "do not write the report")(
      "robustness", po::value(&a.robustness),
      "off | default | full: the test split under missing and noisy modalities (default: the profile's; paper full, "
      "quick default, smoke off)")(
      "keep-checkpoints", po::bool_switch(&a.keep_checkpoints),
      "keep each run's best weights beside the database (for `dmdbench robustness` later)")(
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
