// The training step (forward, loss, backward) captured once as a CUDA graph and replayed for each
// batch: the `cuda_graph` option, off by default. Needs --device cuda and a CUDA build of LibTorch; shapes are
// static, so the trainer drops the trailing incomplete training batch while it is on. Gradients are kept
// allocated (the captured backward accumulates into them), so gradient accumulation works as in the eager step;
// value clipping and the optimizer step run eagerly after each replay, as in the eager step.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "harness/data/dataset.h"
#include "harness/training/trainable.h"

namespace dmdbench {

// True when this build can capture CUDA graphs (a CUDA LibTorch).
bool cuda_graphs_built();
// ConfigError, in one sentence, unless `device` is CUDA and this build can capture graphs.
void require_cuda_graphs(torch::Device device);

class GraphedTrainStep {
 public:
  // Warms up on `example` (on a side stream, as capture requires), then captures one step on static copies of
  // its tensors. `model` and `params` must outlive this object. Throws ConfigError without CUDA graph support.
  GraphedTrainStep(Trainable& model, std::vector<torch::Tensor> params, bool autocast_bf16,
                   const Batch& example);
  ~GraphedTrainStep();
  // Copies `b` (same shapes as the example) into the static inputs and replays the step; returns the loss, a
  // scalar on the device, valid until the next run().
  torch::Tensor run(const Batch& b);
  void zero_grads();  // what optimizer.zero_grad() does, in place (the graph holds the gradient buffers)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Eager step vs graphed step on one batch in eval mode (no dropout, so both must agree): the largest absolute
// gradient difference over all parameters and the largest absolute gradient, for the log. Leaves the
// gradients zeroed and the model in training mode.
struct GraphCheck {
  double max_abs_diff = 0, max_abs_grad = 0;
};
GraphCheck check_graphed_step(Trainable& model, const std::vector<torch::Tensor>& params, bool autocast_bf16,
                              const Batch& b);

}  // namespace dmdbench
