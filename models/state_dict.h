// Named tensors in the reference's state_dict order, and a strict loader that names every mismatch.
#pragma once

#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace dmdbench::models {

// Ordered name -> tensor (parameters and buffers), as torch's state_dict() / an archive's OrderedDict.
using StateDict = std::vector<std::pair<std::string, torch::Tensor>>;

struct StateDictMismatch : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Parameters and buffers of m with their full dotted names, in registration order (like Python's state_dict()).
StateDict state_dict(const torch::nn::Module& m);

// Copies every tensor of `state` into m (under NoGradGuard, converting dtype/device). Strict: throws
// StateDictMismatch listing every missing key, unexpected key and shape mismatch ("missing: a, b; unexpected: c;
// shape: d expected [30,74,1] got [30,74,3]") if the names and shapes do not match exactly.
void load_state_dict(torch::nn::Module& m, const StateDict& state);

}  // namespace dmdbench::models
