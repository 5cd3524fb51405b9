// The one training step (spec §3.2) that the trainer and the benchmarks run: gradients dropped before the first
// batch of an accumulation group, forward + full loss + backward (bf16 autocast when asked; replayed as a CUDA
// graph with the cuda_graph option), value clipping after every backward, and Adam after the group's last batch.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "harness/data/dataset.h"
#include "harness/experiment/config.h"
#include "harness/training/recipe.h"
#include "harness/training/trainable.h"
#include "models/fused_adam.h"

namespace dmdbench {

class GraphedTrainStep;

class TrainStep {
 public:
  // Adam (torch.optim.Adam's defaults, the configured learning_rate) over every parameter of `model`, which
  // must outlive the step; grad_clip and autocast from `cfg`.
  TrainStep(Trainable& model, const Config& cfg);
  ~TrainStep();
  // Captures the step as a CUDA graph on `example`'s shapes (the cuda_graph option); ConfigError without CUDA.
  void use_cuda_graph(const Batch& example);
  // One batch: drop the gradients first when `first_of_group`; after the backward, the gradient's L2 norm before
  // clipping into *grad_norm when given; clip; Adam when `last_of_group`. Returns the loss and its terms (a CUDA
  // graph's replay gives the total only).
  StepLoss run(const Batch& b, bool first_of_group, bool last_of_group, double* grad_norm = nullptr);
  void optimizer_step();  // a kept trailing partial group's step at the end of an epoch
  void set_learning_rate(double lr);
  const std::vector<torch::Tensor>& parameters() const { return params_; }

 private:
  Trainable& model_;
  std::vector<torch::Tensor> params_;
  models::FusedAdam optimizer_;
  GradientBuffers grads_;
  double clip_;
  bool bf16_;
  std::unique_ptr<GraphedTrainStep> graph_;
};

}  // namespace dmdbench
