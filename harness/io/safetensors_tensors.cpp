// Safetensors entries to tensors (see safetensors_tensors.h).
#include "harness/io/safetensors_tensors.h"

#include <fmt/format.h>

#include <cstring>

#include "harness/io/pickle.h"

namespace dmdbench::safetensors {

torch::Tensor to_tensor(const Entry& e, const std::byte* file) {
  if (is_float(e.dtype)) {
    torch::Tensor t = torch::empty(e.shape, torch::kFloat);
    to_float32(e, file, t.data_ptr<float>());
    return t;
  }
  torch::ScalarType type = torch::kLong;
  switch (e.dtype) {
    case DType::I64:
      type = torch::kLong;
      break;
    case DType::I32:
      type = torch::kInt;
      break;
    case DType::I16:
      type = torch::kShort;
      break;
    case DType::I8:
      type = torch::kChar;
      break;
    case DType::U8:
    case DType::BOOL:
      type = torch::kByte;
      break;
    default:
      break;
  }
  torch::Tensor t = torch::empty(e.shape, type);
  if (e.end > e.begin) std::memcpy(t.data_ptr(), file + e.begin, e.end - e.begin);
  return e.dtype == DType::BOOL ? t.ne(0) : t;
}

models::StateDict read_safetensors(const std::string& path) {
  pickle::MappedFile file;
  try {
    file = pickle::map_file(path);
  } catch (const std::exception& e) {
    throw SafetensorsError(e.what());
  }
  const Header h = parse(file.data, file.size, path);
  models::StateDict out;
  out.reserve(h.tensors.size());
  for (const Entry& e : h.tensors) out.emplace_back(e.name, to_tensor(e, file.data));
  return out;
}

}  // namespace dmdbench::safetensors
