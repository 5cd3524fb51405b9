#include "harness/training/step.h"

#include "harness/training/cuda_graph.h"

namespace dmdbench {

TrainStep::TrainStep(Trainable& model, const Config& cfg)
    : model_(model),
      params_(model.parameters()),
      optimizer_(params_, torch::optim::AdamOptions(learning_rate(cfg))),  // torch.optim.Adam
      grads_(params_),
      clip_(cfg.num("grad_clip")),
      bf16_(cfg.str("autocast") == "bf16") {}

TrainStep::~TrainStep() = default;

void TrainStep::use_cuda_graph(const Batch& example) {
  model_.train(true);
  graph_ = std::make_unique<GraphedTrainStep>(model_, params_, bf16_, example);
}

StepLoss TrainStep::run(const Batch& b, bool first_of_group, bool last_of_group, double* grad_norm) {
  if (first_of_group) {  // optimizer.zero_grad()
    if (graph_)
      graph_->zero_grads();
    else
      grads_.reset();
  }
  StepLoss loss;
  if (graph_) {
    loss.total = graph_->run(b);  // forward, loss and backward replayed
  } else {
    loss = loss_and_backward(model_, b, bf16_);
    grads_.after_backward();
  }
  if (grad_norm) *grad_norm = grad_l2_norm(params_);
  clip_grad_value(params_, clip_);
  if (last_of_group) optimizer_.step();
  return loss;
}

void TrainStep::optimizer_step() { optimizer_.step(); }

void TrainStep::set_learning_rate(double lr) { dmdbench::set_learning_rate(optimizer_, lr); }

}  // namespace dmdbench
