// Safetensors files as tensors: the LibTorch side of harness/safetensors.h.
#pragma once

#include <torch/torch.h>

#include <string>

#include "harness/io/safetensors.h"
#include "models/state_dict.h"

namespace dmdbench::safetensors {

// One entry of a parsed file as a CPU tensor: float dtypes become float32; I64/I32/I16/I8/U8 keep their
// integer type; BOOL becomes bool (any non-zero byte is true).
torch::Tensor to_tensor(const Entry& e, const std::byte* file);

// Reads a whole .safetensors file: name -> tensor in file (data) order. Errors: SafetensorsError, one
// sentence starting with the path.
models::StateDict read_safetensors(const std::string& path);

}  // namespace dmdbench::safetensors
