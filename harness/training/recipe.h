// The reference training recipe's parts, each testable on its own (spec §3.2, §3.4).
#pragma once

#include <torch/torch.h>

#include <limits>
#include <vector>

namespace dmdbench {

// Gradient accumulation over `update_epochs` batches with summed gradients. zero_grad before the first batch
// of a group, step after the last; the trailing partial group of an epoch is discarded (the reference) unless
// keep_partial, in which case it is stepped at the end of the epoch.
class GradientAccumulation {
 public:
  GradientAccumulation(int64_t update_epochs, bool keep_partial) : n_(update_epochs), keep_partial_(keep_partial) {}
  void start_epoch() { left_ = n_; }
  bool zero_before_batch() const { return left_ == n_; }
  // Call after each backward; true when the optimizer should step now.
  bool step_after_batch() {
    if (--left_ == 0) {
      left_ = n_;
      return true;
    }
    return false;
  }
  // Call at the end of the epoch; true when a kept partial group should be stepped.
  bool step_at_epoch_end() const { return keep_partial_ && left_ != n_; }

 private:
  int64_t n_;
  bool keep_partial_;
  int64_t left_ = 0;
};

// optimizer.zero_grad() without the memset and the add into zeros: gradients are dropped before a group's first
// backward, so backward writes them fresh (bit-identical: 0 + g == g). A parameter that had a gradient in an
// earlier step but gets none from this backward is given zeros afterwards, which is what zero_grad() leaves
// (Adam then still moves it by its momentum, as in the reference).
class GradientBuffers {
 public:
  explicit GradientBuffers(std::vector<torch::Tensor> params)
      : params_(std::move(params)), seen_(params_.size(), false) {}
  void reset();           // before the first backward of a group
  void after_backward();  // after each backward
 private:
  std::vector<torch::Tensor> params_;
  std::vector<bool> seen_;
};

// clip_grad_value_: elementwise clamp of every gradient to [-clip, clip].
void clip_grad_value(const std::vector<torch::Tensor>& params, double clip);
// L2 norm over all gradients (undefined gradients skipped).
double grad_l2_norm(const std::vector<torch::Tensor>& params);

// torch.optim.lr_scheduler.ReduceLROnPlateau(mode='min', threshold_mode='rel', cooldown=0, min_lr=0, eps=1e-8).
class PlateauScheduler {
 public:
  PlateauScheduler(double lr, double factor, int64_t patience, double threshold)
      : lr_(lr), factor_(factor), patience_(patience), threshold_(threshold) {}
  double step(double metric);  // returns the learning rate to use from now on
  double lr() const { return lr_; }

 private:
  double lr_, factor_;
  int64_t patience_;
  double threshold_;
  double best_ = std::numeric_limits<double>::infinity();
  int64_t bad_epochs_ = 0;
};

// Best-epoch selection on the validation loss (improvement > 1e-6) and early stopping after `early_stop`
// epochs without improvement; an optional epoch cap (0 = none). Epochs count from 1.
class EarlyStopping {
 public:
  EarlyStopping(int64_t early_stop, int64_t max_epochs) : early_stop_(early_stop), max_epochs_(max_epochs) {}
  bool update(int64_t epoch, double valid_loss);  // true when this epoch is the new best
  bool should_stop(int64_t epoch) const {
    return epoch - best_epoch_ >= early_stop_ || (max_epochs_ > 0 && epoch >= max_epochs_);
  }
  int64_t best_epoch() const { return best_epoch_; }
  double best_loss() const { return best_; }

 private:
  int64_t early_stop_, max_epochs_;
  int64_t best_epoch_ = 0;
  double best_ = std::numeric_limits<double>::infinity();
};

void set_learning_rate(torch::optim::Optimizer& opt, double lr);

}  // namespace dmdbench
