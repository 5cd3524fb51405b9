// Progress display for `train`: a redrawn bar on a terminal, one plain line per epoch otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

#include "harness/cli/verb.h"
#include "harness/training/trainer.h"

namespace dmdbench {

using cli::format_duration;

class EpochProgress {
 public:
  EpochProgress(std::ostream& out, bool terminal, int64_t max_epochs, int64_t early_stop);
  void batch(int64_t epoch, int64_t batch, int64_t batches);
  void epoch(const EpochReport& r);
  // Remaining-time estimate: epochs left under the cap, or at most until early stopping could fire.
  double remaining_seconds(int64_t epoch) const;

 private:
  std::ostream& out_;
  bool terminal_;
  int64_t max_epochs_, early_stop_, best_epoch_ = 0;
  double epoch_seconds_sum_ = 0;
  int64_t epochs_done_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace dmdbench
