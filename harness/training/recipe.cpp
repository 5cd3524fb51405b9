#include "harness/training/recipe.h"

#include <cmath>

#include "models/kernels.h"

namespace dmdbench {

void clip_grad_value(const std::vector<torch::Tensor>& params, double clip) {
  torch::NoGradGuard guard;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    torch::Tensor g = p.grad();
    if (g.device().is_cpu() && g.scalar_type() == torch::kFloat && g.is_contiguous())
      models::kernels::clamp(g.numel(), static_cast<float>(-clip), static_cast<float>(clip), g.data_ptr<float>());
    else
      g.clamp_(-clip, clip);
  }
}

void GradientBuffers::reset() {
  for (auto& p : params_)
    if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
}

void GradientBuffers::after_backward() {
  torch::NoGradGuard guard;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i];
    if (p.grad().defined())
      seen_[i] = true;
    else if (seen_[i])
      p.mutable_grad() = torch::zeros_like(p);
  }
}

double grad_l2_norm(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard guard;
  double sq = 0;
  for (const auto& p : params)
    if (p.grad().defined()) sq += p.grad().to(torch::kDouble).pow(2).sum().item<double>();
  return std::sqrt(sq);
}

double PlateauScheduler::step(double metric) {
  if (metric < best_ * (1.0 - threshold_)) {
    best_ = metric;
    bad_epochs_ = 0;
  } else {
    ++bad_epochs_;
  }
  if (bad_epochs_ > patience_) {
    const double new_lr = lr_ * factor_;
    if (lr_ - new_lr > 1e-8) lr_ = new_lr;
    bad_epochs_ = 0;
  }
  return lr_;
}

bool EarlyStopping::update(int64_t epoch, double valid_loss) {
  if (valid_loss <= best_ - 1e-6) {
    best_ = valid_loss;
    best_epoch_ = epoch;
    return true;
  }
  return false;
}

void set_learning_rate(torch::optim::Optimizer& opt, double lr) {
  for (auto& group : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
}

}  // namespace dmdbench
