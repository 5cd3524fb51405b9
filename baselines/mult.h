// The MulT baseline as MMSA runs it (spec §7): crossmodal encoders on the projected inputs.
#pragma once

#include <torch/torch.h>

#include "models/dmd.h"

namespace dmdbench::baselines {

struct MulTConfig {
  models::DMDConfig base;           // dims, d, heads, kernels, dropouts (MulT's own values, spec §7.4)
  bool position_embedding = true;   // original MulT / DMD copy; MMSA's current code has it off
};

class MulTImpl : public torch::nn::Module {
 public:
  explicit MulTImpl(const MulTConfig& cfg);
  // text [N,T,D_l], audio [N,T_a,D_a], vision [N,T_v,D_v] -> output [N,1]
  torch::Tensor forward(const torch::Tensor& text, const torch::Tensor& audio, const torch::Tensor& vision);
  const MulTConfig& config() const { return cfg_; }

 private:
  MulTConfig cfg_;
  struct Parts;
  std::shared_ptr<Parts> p_;
};
TORCH_MODULE(MulT);

}  // namespace dmdbench::baselines
