// The one evaluation pass (eval mode, no_grad) that the trainer (validation and test), `evaluate` and the
// robustness grid run: a split in batches, in file order or shuffled by a seeded generator (the reference's
// loaders shuffle, and its memory encoders make a sample's output depend on its batch, spec §1.11).
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "harness/data/dataset.h"
#include "harness/training/trainable.h"

namespace dmdbench {

struct EvalOptions {
  int64_t batch_size = 16;
  bool shuffle = false;   // false: file order
  uint64_t seed = 0;      // the batch order's generator when shuffled
  bool with_edges = false;
  bool with_heads = false;
  bool autocast_bf16 = false;
};

struct EvalPass {
  std::vector<float> predictions, labels;  // in batch order
  std::vector<int64_t> indices;            // the sample each prediction belongs to
  std::vector<std::pair<std::string, std::vector<float>>> heads;  // with_heads: every other output head
  double loss = 0;                         // mean of the per-batch L1 of the output (the reference's "Loss")
  std::vector<EdgeMatrix> edge_sums;       // with_edges: per edge space, summed over samples
  std::vector<double> batch_ms;            // time per batch, gathering and transfer included
};

EvalPass evaluate_split(Trainable& model, const Split& split, torch::Device device, const EvalOptions& o);

}  // namespace dmdbench
