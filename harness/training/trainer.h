// One training run with the reference recipe (spec §3): Adam, summed gradient accumulation with value
// clipping after every backward, ReduceLROnPlateau on the rounded validation loss, best-epoch selection,
// early stopping, and the test split evaluated with the best epoch's weights.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "harness/experiment/config.h"
#include "harness/data/dataset.h"
#include "results/metrics.h"
#include "harness/training/trainable.h"

namespace dmdbench {

struct EpochReport {
  int64_t epoch = 0;
  double train_loss = 0;  // mean of the per-batch training totals
  double valid_loss = 0;  // mean of per-batch L1 of output_logit, rounded to 4 decimals
  double lr = 0;          // learning rate used in this epoch
  double seconds = 0;
  double grad_norm = 0;   // L2 norm of the accumulated gradient before the epoch's last clip
  int64_t optimizer_steps = 0;
  bool best = false;
  results::MetricValues valid;
};

struct PhaseThroughput {
  std::string phase;  // "train" | "eval"
  int64_t batch_size = 0;
  double samples_per_s = 0, latency_p50_ms = 0, latency_p95_ms = 0;
};

// The test split evaluated again with the best weights in another seeded batch order (spec §1.11: a sample's
// output depends on the samples it is batched with).
struct ShuffledTest {
  uint64_t seed = 0;  // the batch order's generator
  results::MetricValues metrics;
};

struct TrainResult {
  int64_t best_epoch = 0;
  double best_valid_loss = 0;
  results::MetricValues test;
  uint64_t test_seed = 0;                  // the batch order of the test pass above (when eval_shuffle)
  std::vector<ShuffledTest> test_shuffles;  // `test_shuffles` more passes, same weights, other orders
  std::vector<EpochReport> history;
  std::vector<std::string> edge_spaces;  // "homo", "hetero"
  std::vector<EdgeMatrix> edges;         // mean over the test split, [from][to], per space
  std::vector<PhaseThroughput> throughput;
  int64_t peak_memory_bytes = 0, parameters = 0;
  double wall_seconds = 0;
  std::string graph_check;         // cuda_graph runs: eager vs graph gradients on one batch, for the log
  double graph_max_abs_diff = -1;  // the same check's number (-1: no graph)
  models::StateDict best_network_state;  // the reference's own state_dict (DMD without GD units)
  std::vector<float> test_predictions, test_labels;
};

struct TrainHooks {
  std::function<void(const EpochReport&)> on_epoch;             // after each epoch
  std::function<void(int64_t epoch, int64_t batch, int64_t batches)> on_batch;  // after each training batch
  std::function<std::string()> should_stop;  // after each batch: a reason to stop (Interrupted), "" to go on
};

// A run whose training or validation loss became NaN or infinite; the message names the epoch and the term.
struct Diverged : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A run stopped from outside (should_stop gave a reason: a signal, a lost parent, a store error).
struct Interrupted : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Trains one run. `cfg` is the resolved configuration; the run's seed drives model initialisation, dropout
// and the batch order (each through generators the run owns). After the test pass with the best weights, the
// test split is evaluated `test_shuffles` more times, each in a shuffled order from its own seed (derived from
// the run's seed); those passes change nothing else (eval mode, own generators), so the clean test metrics are
// what they are without them. A configuration with a text model needs `bert` (its architecture and starting
// weights) and data whose text_bert fits its vocabulary (DataError otherwise).
TrainResult train_run(const Dataset& data, const Config& cfg, int64_t seed, torch::Device device,
                      const TrainHooks& hooks = {}, const BertFolder* bert = nullptr);

}  // namespace dmdbench
