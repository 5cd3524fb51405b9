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

// text_bert [n,3,L] as MMSA stores it: [CLS] (101), random word ids in [1000, vocab), [SEP] (102) at a random
// length between L/2 and L, then [PAD] (0) with mask 0; segment ids 0. Drawn from a generator seeded with 11.
inline torch::Tensor random_text_bert(int64_t n, int64_t L, int64_t vocab, torch::Device device) {
  torch::manual_seed(11);
  torch::Tensor ids = torch::randint(std::min<int64_t>(1000, vocab - 1), vocab, {n, L}).to(torch::kFloat);
  torch::Tensor mask = torch::ones({n, L});
  const torch::Tensor lengths = torch::randint(L / 2, L + 1, {n});
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = lengths[i].item<int64_t>();
    ids[i][0] = 101, ids[i][len - 1] = 102;
    if (len < L) ids[i].narrow(0, len, L - len).zero_(), mask[i].narrow(0, len, L - len).zero_();
  }
  return torch::stack({ids, mask, torch::zeros({n, L})}, 1).to(device);  // [n,3,L]
}

}  // namespace dmdbench::bench
