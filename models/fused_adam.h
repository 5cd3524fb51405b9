// Adam with the same state, options, serialization and update rule as torch::optim::Adam, but one fused pass
// per parameter tensor on the CPU (float32): m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g^2, p -= lr/(1-b1^t) * m
// / (sqrt(v)/sqrt(1-b2^t) + eps), with weight decay added to g first (L2, as LibTorch). LibTorch's step runs
// ~10 tensor ops per parameter tensor; DMD has 228 of them and 4.7M values (MOSI). Drop-in: it is a
// torch::optim::Adam (param groups, AdamOptions, set_learning_rate, save/load all unchanged). amsgrad,
// non-float or non-CPU parameters take the base class's step.
#pragma once

#include <torch/torch.h>

namespace dmdbench::models {

class FusedAdam : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace dmdbench::models
