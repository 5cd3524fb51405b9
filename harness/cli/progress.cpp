#include "harness/cli/progress.h"

#include <fmt/format.h>

#include <algorithm>

namespace dmdbench {

EpochProgress::EpochProgress(std::ostream& out, bool terminal, int64_t max_epochs, int64_t early_stop)
    : out_(out), terminal_(terminal), max_epochs_(max_epochs), early_stop_(early_stop) {}

double EpochProgress::remaining_seconds(int64_t epoch) const {
  if (epochs_done_ == 0) return 0;
  int64_t left = best_epoch_ + early_stop_ - epoch;  // early stopping fires at the latest then
  if (max_epochs_ > 0) left = std::min(left, max_epochs_ - epoch);
  return std::max<int64_t>(0, left) * (epoch_seconds_sum_ / epochs_done_);
}

void EpochProgress::batch(int64_t epoch, int64_t batch, int64_t batches) {
  if (!terminal_) return;
  const int width = 30, filled = static_cast<int>(width * batch / std::max<int64_t>(1, batches));
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  out_ << fmt::format("\repoch {:>3}{} [{}{}] {}/{} batches  elapsed {}", epoch,
                      max_epochs_ > 0 ? fmt::format("/{}", max_epochs_) : "", std::string(filled, '#'),
                      std::string(width - filled, '.'), batch, batches, format_duration(elapsed))
       << std::flush;
}

void EpochProgress::epoch(const EpochReport& r) {
  epoch_seconds_sum_ += r.seconds;
  ++epochs_done_;
  if (r.best) best_epoch_ = r.epoch;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (terminal_) out_ << "\r\033[K";
  std::string metrics;
  for (const auto& m : results::metric_defs())
    if (auto v = m.in_summary ? r.valid.find(m.name) : std::nullopt)
      metrics += fmt::format(" {} {}", m.label, results::format_stored(m, *v));
  out_ << fmt::format("epoch {:>3}{}  train {:.4f}  valid {:.4f}{} {}  lr {:.1e}  {:.1f} s  elapsed {}  remaining <= {}\n",
                      r.epoch, max_epochs_ > 0 ? fmt::format("/{}", max_epochs_) : "", r.train_loss, r.valid_loss,
                      r.best ? " *" : "  ", metrics, r.lr, r.seconds, format_duration(elapsed),
                      format_duration(remaining_seconds(r.epoch)));
  out_.flush();
}

}  // namespace dmdbench
