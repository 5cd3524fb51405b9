// The inputs every benchmark case (and the FLOP count) runs on: the family's feature dims and a random batch.
#pragma once

#include <torch/torch.h>

#include <string>

#include "harness/training/trainable.h"

namespace dmdbench::bench {

// A batch of random features with labels on the 1/3 grid, on `device`.
inline Batch random_batch(const FeatureDims& d, int64_t n, torch::Device device) {
  torch::manual_seed(7);
  Batch b;
  b.text = torch::randn({n, d.text_len, d.text}).to(device);
  b.audio = torch::randn({n, d.audio_len, d.audio}).to(device);
  b.vision = torch::randn({n, d.vision_len, d.vision}).to(device);
  b.labels = (torch::randint(-9, 10, {n}) / 3.0).to(torch::kFloat).to(device);
  b.index = torch::arange(n);
  return b;
}

}  // namespace dmdbench::bench
