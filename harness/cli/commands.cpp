#include "harness/cli/commands.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "ablations/variants.h"
#include "harness/io/checkpoint.h"
#include "harness/data/dataset.h"
#include "harness/training/device.h"
#include "harness/experiment/plan.h"
#include "harness/cli/progress.h"
#include "harness/training/trainer.h"
#include "models/dmd.h"

namespace dmdbench {

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

int cmd_train(const TrainArgs& a) {
  set_threads(a.threads);
  const DeviceSetup dev = setup_device(a.device, a.fast);
  const Config cfg = ablations::resolve_config(parse_dataset_spec(a.dataset).known_family(), a.variant, a.profile, a.sets);
  LoadOptions lo;
  lo.zero_nan = cfg.flag("zero_nan");
  const Dataset data = open_dataset(a.dataset, lo, cfg.num("synthetic_scale"),
                                    static_cast<uint64_t>(cfg.integer("synthetic_seed")));
  std::cout << fmt::format("dmdbench train: {} on {} ({} / {} / {} samples), seed {}, profile {}, {}, {} thread(s)\n",
                           a.variant, data.name, data.train.size(), data.valid.size(), data.test.size(), a.seed,
                           a.profile, dev.name, current_threads());
  std::cout << "resolved configuration:\n" << cfg.pretty();

  EpochProgress progress(std::cout, isatty(STDOUT_FILENO), cfg.integer("max_epochs"), cfg.integer("early_stop"));
  TrainHooks hooks;
  hooks.on_batch = [&](int64_t e, int64_t b, int64_t n) { progress.batch(e, b, n); };
  hooks.on_epoch = [&](const EpochReport& r) { progress.epoch(r); };
  const TrainResult r = train_run(data, cfg, a.seed, dev.device, hooks);

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
  if (!a.checkpoint_out.empty()) {
    write_checkpoint(a.checkpoint_out, r.best_network_state);
    std::cout << "wrote the best weights (reference state_dict format) to " << a.checkpoint_out << "\n";
  }
  return 0;
}

int cmd_evaluate(const EvaluateArgs& a) {
  set_threads(a.threads);
  const DeviceSetup dev = setup_device(a.device);
  LoadOptions lo;
  lo.zero_nan = a.zero_nan;
  const Dataset data = load_mmsa(a.data, a.config, lo);
  const Split& split = data.split(a.split);
  models::DMD net(dmd_config_of(reference_config(a.config, "dmd"), data.dims()));
  models::load_state_dict(*net, read_checkpoint(a.checkpoint));
  net->to(dev.device);
  net->eval();
  torch::NoGradGuard no_grad;

  std::vector<float> pred, truth;
  std::unique_ptr<std::ofstream> csv;
  const std::string tmp = a.predictions + ".tmp";
  if (!a.predictions.empty()) {
    csv = std::make_unique<std::ofstream>(tmp);
    if (!*csv) throw std::runtime_error(fmt::format("cannot write predictions file {}", a.predictions));
    *csv << "id,label,prediction,logits_c,logits_l_homo,logits_v_homo,logits_a_homo,logits_l_hetero,"
            "logits_v_hetero,logits_a_hetero\n";
  }
  Batcher batches(split, 16, false, false, 0, dev.device);  // file order
  batches.new_epoch();
  for (int64_t i = 0; i < batches.num_batches(); ++i) {
    const Batch b = batches.get(i);
    const models::DMDOutput o = net->forward(b.text, b.audio, b.vision);
    const torch::Tensor cols = torch::cat({o.output_logit, o.logits_c, o.logits_l_homo, o.logits_v_homo,
                                           o.logits_a_homo, o.logits_l_hetero, o.logits_v_hetero, o.logits_a_hetero},
                                          1).to(torch::kCPU, torch::kFloat);  // [B,8]
    const torch::Tensor y = b.labels.to(torch::kCPU, torch::kFloat), idx = b.index.to(torch::kCPU);
    for (int64_t r = 0; r < cols.size(0); ++r) {
      pred.push_back(cols[r][0].item<float>());
      truth.push_back(y[r].item<float>());
      if (csv) {
        *csv << split.ids.at(idx[r].item<int64_t>()) << ',' << fmt::format("{:.9g}", truth.back());
        for (int64_t c = 0; c < 8; ++c) *csv << ',' << fmt::format("{:.9g}", cols[r][c].item<float>());
        *csv << '\n';
      }
    }
  }
  const results::MetricValues m = results::regression_metrics(pred, truth);
  std::cout << fmt::format("evaluated {} on the {} split of {} ({} samples, {}):\n", a.checkpoint, a.split, a.data,
                           split.size(), dev.name);
  print_metrics(std::cout, m);
  if (csv) {
    csv->close();
    if (!*csv || std::rename(tmp.c_str(), a.predictions.c_str()) != 0)
      throw std::runtime_error(fmt::format("cannot write predictions file {}", a.predictions));
    std::cout << "wrote predictions to " << a.predictions << "\n";
  }
  return 0;
}

}  // namespace dmdbench
