#include "harness/training/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "harness/training/cuda_graph.h"
#include "harness/training/evaluation.h"
#include "harness/training/step.h"
#include "harness/training/device.h"
#include "harness/training/recipe.h"
#include "models/compat.h"

namespace dmdbench {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Independent streams for the batch orders of each split, derived from the run's seed.
uint64_t stream_seed(int64_t seed, uint64_t stream) {
  uint64_t z = static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ULL + stream * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::string non_finite_text(double v) { return std::isnan(v) ? "NaN" : v > 0 ? "+inf" : "-inf"; }

}  // namespace

TrainResult train_run(const Dataset& data, const Config& cfg, int64_t seed, torch::Device device,
                      const TrainHooks& hooks, const BertFolder* bert) {
  const auto run_start = Clock::now();
  const bool text_model = cfg.str("model") == "dmd" && uses_text_model(cfg);
  if (text_model && bert) check_text_bert(data, bert->config.vocab, bert->config.type_vocab);
  torch::manual_seed(static_cast<uint64_t>(seed));  // model initialisation and dropout
  auto model = build_trainable(cfg, data.dims(), device, text_model ? bert : nullptr);

  const int64_t batch_size = cfg.integer("batch_size");
  EvalOptions eval;
  eval.batch_size = batch_size, eval.shuffle = cfg.flag("eval_shuffle"), eval.autocast_bf16 = cfg.str("autocast") == "bf16";
  TrainStep step(*model, cfg);
  PlateauScheduler scheduler(learning_rate(cfg), cfg.num("plateau_factor"), cfg.integer("plateau_patience"),
                             cfg.num("plateau_threshold"));
  EarlyStopping stopping(cfg.integer("early_stop"), cfg.integer("max_epochs"));
  GradientAccumulation accumulation(cfg.integer("update_epochs"), cfg.flag("keep_partial_group"));
  const bool graphed = cfg.flag("cuda_graph");
  if (graphed) require_cuda_graphs(device);

  // Static shapes for the graph: the trailing incomplete training batch is dropped while cuda_graph is on.
  Batcher train_batches(data.train, batch_size, true, /*drop_last=*/graphed, stream_seed(seed, 1), device);
  TrainResult result;
  if (graphed) {
    // The first training rows in file order: check the graph against the eager step, then capture for training.
    Batcher probe(data.train, batch_size, false, true, 0, device);
    if (probe.num_batches() == 0)
      throw ConfigError(fmt::format("cuda_graph=true needs at least one full batch of {} training rows", batch_size));
    const Batch example = probe.get(0);
    const GraphCheck check = check_graphed_step(*model, step.parameters(), eval.autocast_bf16, example);
    result.graph_check = fmt::format("CUDA graph vs eager step (eval mode, one batch): max |grad diff| {:.3g}, max |grad| {:.3g}",
                                     check.max_abs_diff, check.max_abs_grad);
    result.graph_max_abs_diff = check.max_abs_diff;
    if (!(check.max_abs_diff <= 1e-4 * std::max(1.0, check.max_abs_grad)))
      throw std::runtime_error(result.graph_check + ": the captured step does not match the eager step");
    step.use_cuda_graph(example);
  }
  result.parameters = model->parameter_count();
  models::StateDict best_snapshot;
  std::vector<double> step_ms;
  double train_seconds = 0;
  int64_t train_samples = 0;

  for (int64_t epoch = 1;; ++epoch) {
    const auto epoch_start = Clock::now();
    EpochReport rep;
    rep.epoch = epoch;
    rep.lr = scheduler.lr();
    model->train(true);
    train_batches.new_epoch();
    accumulation.start_epoch();
    double loss_sum = 0;
    const int64_t n_batches = train_batches.num_batches();
    for (int64_t i = 0; i < n_batches; ++i) {
      const auto t0 = Clock::now();
      const bool first = accumulation.zero_before_batch();
      const bool last = accumulation.step_after_batch();
      const Batch b = train_batches.get(i);
      const StepLoss loss = step.run(b, first, last, i == n_batches - 1 ? &rep.grad_norm : nullptr);
      const double value = loss.total.item<double>();
      if (!std::isfinite(value))
        throw Diverged(fmt::format("the training loss became {} at epoch {}, batch {} (term '{}')",
                                   non_finite_text(value), epoch, i + 1, non_finite_term(loss)));
      rep.optimizer_steps += last;
      loss_sum += value;
      step_ms.push_back(ms_since(t0));
      train_samples += b.labels.size(0);
      if (hooks.on_batch) hooks.on_batch(epoch, i + 1, n_batches);
      if (hooks.should_stop)
        if (const std::string why = hooks.should_stop(); !why.empty()) throw Interrupted(why);
    }
    if (accumulation.step_at_epoch_end()) {
      step.optimizer_step();
      ++rep.optimizer_steps;
    }
    train_seconds += ms_since(epoch_start) / 1e3;
    rep.train_loss = n_batches ? loss_sum / n_batches : 0;

    eval.seed = stream_seed(seed, 2 + epoch), eval.with_edges = false;
    const EvalPass valid = evaluate_split(*model, data.valid, device, eval);
    if (!std::isfinite(valid.loss))
      throw Diverged(fmt::format("the validation loss became {} at epoch {}", non_finite_text(valid.loss), epoch));
    rep.valid_loss = results::round4(valid.loss);
    rep.valid = results::regression_metrics(valid.predictions, valid.labels);
    step.set_learning_rate(scheduler.step(rep.valid_loss));
    rep.best = stopping.update(epoch, rep.valid_loss);
    if (rep.best) best_snapshot = model->snapshot();
    rep.seconds = ms_since(epoch_start) / 1e3;
    result.history.push_back(rep);
    if (hooks.on_epoch) hooks.on_epoch(rep);
    if (stopping.should_stop(epoch)) break;
  }

  // Test with the best epoch's weights.
  model->restore(best_snapshot);
  result.best_epoch = stopping.best_epoch();
  result.best_valid_loss = stopping.best_loss();
  constexpr uint64_t kTestStream = 1u << 20;  // the test passes' batch orders: streams 2^20, 2^20 + 1, ...
  eval.seed = stream_seed(seed, kTestStream), eval.with_edges = true;
  const EvalPass test = evaluate_split(*model, data.test, device, eval);
  result.test = results::regression_metrics(test.predictions, test.labels);
  result.test_seed = eval.seed;
  result.test_predictions = test.predictions;
  result.test_labels = test.labels;
  result.edge_spaces = model->edge_spaces();
  for (EdgeMatrix m : test.edge_sums) {
    for (auto& row : m)
      for (double& w : row) w /= std::max<int64_t>(1, data.test.size());
    result.edges.push_back(m);
  }
  result.best_network_state = model->network_state();

  // Throughput: training from the timed steps; evaluation from the timed test pass.
  double test_ms = 0;
  for (double ms : test.batch_ms) test_ms += ms;
  result.throughput.push_back({"train", batch_size, train_seconds > 0 ? train_samples / train_seconds : 0,
                               results::percentile(step_ms, 0.5), results::percentile(step_ms, 0.95)});
  result.throughput.push_back({"eval", batch_size, test_ms > 0 ? data.test.size() / (test_ms / 1e3) : 0,
                               results::percentile(test.batch_ms, 0.5), results::percentile(test.batch_ms, 0.95)});

  // Test-batch sensitivity: the same weights on the test split in other batch orders (always shuffled, also when
  // eval_shuffle is off, since what is measured is the dependence on batch composition).
  EvalOptions shuffled = eval;
  shuffled.shuffle = true, shuffled.with_edges = false;
  for (int64_t i = 1; i <= cfg.integer("test_shuffles"); ++i) {
    shuffled.seed = stream_seed(seed, kTestStream + static_cast<uint64_t>(i));
    const EvalPass pass = evaluate_split(*model, data.test, device, shuffled);
    result.test_shuffles.push_back({shuffled.seed, results::regression_metrics(pass.predictions, pass.labels)});
  }
  result.peak_memory_bytes = peak_memory_bytes(device);
  result.wall_seconds = ms_since(run_start) / 1e3;
  return result;
}

}  // namespace dmdbench
