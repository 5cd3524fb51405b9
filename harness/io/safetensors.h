// Safetensors files (huggingface/safetensors format), parsed natively and without LibTorch:
//   [8 bytes: header length n, little-endian u64] [n bytes: JSON header] [data buffer]
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to
// the data buffer) and may hold "__metadata__" (string -> string). Validation follows the reference
// implementation (safetensors' Rust crate): the data ranges, sorted by offset, must tile the whole buffer
// with no gap and no overlap, and each range must hold exactly numel x dtype size bytes. Values are
// little-endian. This file does not include LibTorch; safetensors_tensors.h turns entries into tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dmdbench::safetensors {

// Any malformed, truncated or hostile file raises this, with one lowercase sentence naming the file.
struct SafetensorsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The dtypes we read (the format also defines F8_*, U16, U32, U64, which are refused as unsupported).
enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };
const char* dtype_name(DType t);  // the format's spelling: "F32", "BF16", ...
std::size_t dtype_size(DType t);
bool is_float(DType t);  // F64, F32, F16, BF16

// Largest header accepted (the Rust crate's limit).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct Entry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;   // [] is a scalar
  uint64_t begin = 0, end = 0;  // byte range in the whole file (data_offsets + 8 + header length)
  int64_t numel() const;
};

struct Header {
  std::vector<Entry> tensors;                                 // in data (file) order
  std::vector<std::pair<std::string, std::string>> metadata;  // __metadata__, in header order
  uint64_t data_start = 0;                                    // 8 + header length
};

// Parses and validates the header of a whole file held in [data, data + size); `what` (the path) starts every
// error message. Nothing is read outside the buffer.
Header parse(const std::byte* data, std::size_t size, std::string_view what);

// IEEE half and bfloat16 bit patterns to float (exact: every F16/BF16 value is a float32 value).
float half_to_float(uint16_t bits);
float bfloat16_to_float(uint16_t bits);

// The entry's values as float32 into out[numel()] (for a float dtype; F64 is rounded to nearest). `file` is
// the same buffer that parse() read; the bytes may be unaligned.
void to_float32(const Entry& e, const std::byte* file, float* out);

}  // namespace dmdbench::safetensors
