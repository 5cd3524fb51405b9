// Mini-batches: a permutation from the batcher's own splitmix64 stream (Fisher-Yates), rows gathered with
// index_select and moved to the device once per batch.
#include <fmt/format.h>

#include <numeric>

#include "harness/data/dataset.h"

namespace dmdbench {
namespace {

uint64_t splitmix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Uniform in [0, bound) without modulo bias (rejection of the short top range).
uint64_t below(uint64_t* state, uint64_t bound) {
  const uint64_t limit = ~uint64_t{0} - (~uint64_t{0} % bound);
  for (;;) {
    const uint64_t x = splitmix64(state);
    if (x < limit) return x % bound;
  }
}

}  // namespace

Batcher::Batcher(const Split& split, int64_t batch_size, bool shuffle, bool drop_last, uint64_t seed,
                 torch::Device device)
    : split_(&split), batch_size_(batch_size), shuffle_(shuffle), drop_last_(drop_last), rng_state_(seed),
      device_(device) {
  if (batch_size <= 0) throw DataError(fmt::format("batch size {} is invalid, expected a positive number", batch_size));
  order_.resize(static_cast<std::size_t>(split.size()));
  std::iota(order_.begin(), order_.end(), int64_t{0});  // file order until the first new_epoch()
}

void Batcher::new_epoch() {
  if (!shuffle_) return;
  std::iota(order_.begin(), order_.end(), int64_t{0});
  for (std::size_t i = order_.size(); i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(below(&rng_state_, i));
    std::swap(order_[i - 1], order_[j]);
  }
}

int64_t Batcher::num_batches() const {
  const int64_t n = static_cast<int64_t>(order_.size());
  return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
}

Batch Batcher::get(int64_t i) const {
  if (i < 0 || i >= num_batches()) {
    throw DataError(fmt::format("batch {} is out of range, expected 0 to {}", i, num_batches() - 1));
  }
  const int64_t begin = i * batch_size_;
  const int64_t end = std::min<int64_t>(begin + batch_size_, static_cast<int64_t>(order_.size()));
  Batch b;
  b.index = torch::from_blob(const_cast<int64_t*>(order_.data()) + begin, {end - begin}, torch::kInt64).clone();  // [B]
  b.text = split_->text.index_select(0, b.index).to(device_);      // [B, T_l, D_l]
  b.audio = split_->audio.index_select(0, b.index).to(device_);    // [B, T_a, D_a]
  b.vision = split_->vision.index_select(0, b.index).to(device_);  // [B, T_v, D_v]
  b.labels = split_->labels.index_select(0, b.index).to(device_);  // [B]
  if (split_->text_bert.defined()) b.text_bert = split_->text_bert.index_select(0, b.index).to(device_);  // [B,3,L]
  return b;
}

FeatureDims Dataset::dims() const {
  FeatureDims f;
  f.text = train.text.size(2), f.audio = train.audio.size(2), f.vision = train.vision.size(2);
  f.text_len = train.text.size(1), f.audio_len = train.audio.size(1), f.vision_len = train.vision.size(1);
  f.text_bert_len = train.text_bert.defined() ? train.text_bert.size(2) : 0;
  return f;
}

}  // namespace dmdbench
