// Builds safetensors files byte by byte for tests (no LibTorch): well-formed ones, and broken ones by editing
// the header or the bytes afterwards.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace dmdbench::testing_support {

struct RawTensor {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::string bytes;  // little-endian values
};

// Raw little-endian bytes of a vector of numbers (floats, uint16 bit patterns, int64...).
template <typename T>
std::string raw_bytes(const std::vector<T>& values) {
  std::string out(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// The header JSON of `tensors` laid out back to back in the given order (plus optional metadata).
inline nlohmann::ordered_json safetensors_header(const std::vector<RawTensor>& tensors,
                                                 const nlohmann::ordered_json& metadata = nullptr) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.is_null()) h["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const RawTensor& t : tensors) {
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  return h;
}

// 8-byte little-endian length, the header text padded with spaces to a multiple of 8, then the data.
inline std::string safetensors_file(const std::string& header_text, const std::string& data) {
  std::string header = header_text;
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

inline std::string safetensors_file(const std::vector<RawTensor>& tensors,
                                    const nlohmann::ordered_json& metadata = nullptr) {
  std::string data;
  for (const RawTensor& t : tensors) data += t.bytes;
  return safetensors_file(safetensors_header(tensors, metadata).dump(), data);
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace dmdbench::testing_support
