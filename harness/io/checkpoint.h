// PyTorch checkpoints: the zip archives that torch.save(model.state_dict()) writes.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "models/state_dict.h"

namespace dmdbench {

struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Ordered name -> tensor, in the order of the archive's OrderedDict.
using models::StateDict;

// Reads a torch.save zip (data.pkl with persistent ids + data/<key> storages). Tensors are CPU, contiguous
// copies with the stored dtype (float32/float64/int64/bool...). Errors name the path and what is wrong.
StateDict read_checkpoint(const std::string& path);

// Before loading `checkpoint` into a model whose state is `model` (names, shapes, dtypes): CheckpointError naming
// the tensors of `parameters` (the model's trainable tensors; unused buffers may hold garbage, as the reference's
// do) that hold NaN or ±inf. Returns one line naming the tensors whose dtype the load converts, "" when none.
std::string check_loadable(const StateDict& checkpoint, const StateDict& model,
                           const std::vector<std::string>& parameters, const std::string& path);

// Writes a torch.save-compatible zip that Python's torch.load + load_state_dict accepts (an OrderedDict).
// Tensors are moved to CPU. Written whole or not at all (harness/io/output_file.h).
void write_checkpoint(const std::string& path, const StateDict& state);

}  // namespace dmdbench
