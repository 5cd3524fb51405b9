// Safetensors header parser and float conversions (see safetensors.h). No LibTorch.
#include "harness/io/safetensors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.cpp reads little-endian data in place; a big-endian host needs byte swaps"
#endif

namespace dmdbench::safetensors {

namespace {

using Json = nlohmann::ordered_json;  // keeps the header's key order

struct DTypeInfo {
  const char* name;
  DType dtype;
  std::size_t size;
};
constexpr DTypeInfo kDTypes[] = {{"F64", DType::F64, 8},   {"F32", DType::F32, 4}, {"F16", DType::F16, 2},
                                 {"BF16", DType::BF16, 2}, {"I64", DType::I64, 8}, {"I32", DType::I32, 4},
                                 {"I16", DType::I16, 2},   {"I8", DType::I8, 1},   {"U8", DType::U8, 1},
                                 {"BOOL", DType::BOOL, 1}};
// Defined by the format, not read here.
constexpr const char* kUnsupported[] = {"F8_E5M2", "F8_E4M3", "F8_E8M0", "F6_E2M3", "F6_E3M2",
                                        "F4",      "U16",     "U32",     "U64",     "C64"};

// A name as it appears in a message: quoted, control and non-ASCII bytes escaped, long names cut.
std::string name_str(std::string_view s) {
  std::string out = "'";
  const std::size_t limit = 120;
  for (std::size_t i = 0; i < s.size() && i < limit; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\')
      out += fmt::format("\\x{:02x}", c);
    else
      out += static_cast<char>(c);
  }
  if (s.size() > limit) out += "...";
  return out + "'";
}

std::string shape_str(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ","));
}

// Header nesting: root object (1), tensor entry or __metadata__ (2), shape / data_offsets arrays (3).
constexpr int kMaxJsonDepth = 3;

Json parse_json(const std::byte* text, std::size_t n, std::string_view what) {
  // Duplicate keys, which nlohmann would silently overwrite, are found with the parser callback: one key set
  // per open object. Nesting deeper than the format needs stops the parse early.
  std::vector<std::set<std::string>> keys;
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth)
          throw SafetensorsError(fmt::format("{}: header nests deeper than the format allows", what));
        if (event == Json::parse_event_t::object_start) keys.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.get_ref<const std::string&>()).second) {
          const std::string& k = parsed.get_ref<const std::string&>();
          throw SafetensorsError(
              depth == 1 ? fmt::format("{}: tensor name {} appears twice in the header", what, name_str(k))
                         : fmt::format("{}: key {} appears twice in one header entry", what, name_str(k)));
        }
        break;
      default:
        break;
    }
    return true;
  };
  const char* begin = reinterpret_cast<const char*>(text);
  try {
    return Json::parse(begin, begin + n, callback);
  } catch (const Json::parse_error& e) {
    throw SafetensorsError(
        e.byte > n ? fmt::format("{}: header is not valid JSON (it ends too early)", what)
                   : fmt::format("{}: header is not valid JSON (error at byte {})", what, e.byte));
  } catch (const Json::out_of_range&) {  // 406: a number such as 1e400 that no double holds
    throw SafetensorsError(fmt::format("{}: header is not valid JSON (a number is out of range)", what));
  } catch (const Json::exception& e) {
    throw SafetensorsError(fmt::format("{}: header is not valid JSON (error {})", what, e.id));
  }
}

// A JSON number that is a non-negative integer, or false.
bool as_u64(const Json& j, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(j.get<int64_t>());
    return true;
  }
  return false;
}

Entry parse_entry(const std::string& name, const Json& j, uint64_t data_start, uint64_t data_len,
                  std::string_view what) {
  const std::string q = name_str(name);
  if (!j.is_object()) throw SafetensorsError(fmt::format("{}: header entry {} is not an object", what, q));
  auto field = [&](const char* key) -> const Json& {
    auto it = j.find(key);
    if (it == j.end()) throw SafetensorsError(fmt::format("{}: tensor {} has no \"{}\"", what, q, key));
    return *it;
  };
  Entry e;
  e.name = name;
  const Json& dtype = field("dtype");
  if (!dtype.is_string())
    throw SafetensorsError(fmt::format("{}: tensor {} has a dtype that is not a string", what, q));
  const std::string& dt = dtype.get_ref<const std::string&>();
  const DTypeInfo* info = nullptr;
  for (const auto& d : kDTypes)
    if (dt == d.name) info = &d;
  if (!info) {
    const bool known =
        std::any_of(std::begin(kUnsupported), std::end(kUnsupported), [&](const char* u) { return dt == u; });
    throw SafetensorsError(
        known ? fmt::format("{}: tensor {} has dtype {}, which is not supported", what, q, name_str(dt))
              : fmt::format("{}: tensor {} has unknown dtype {}", what, q, name_str(dt)));
  }
  e.dtype = info->dtype;

  const Json& shape = field("shape");
  if (!shape.is_array())
    throw SafetensorsError(fmt::format("{}: tensor {} has a shape that is not a list", what, q));
  uint64_t numel = 1;
  bool overflow = false;
  for (const Json& d : shape) {
    uint64_t v = 0;
    if (!as_u64(d, &v))
      throw SafetensorsError(
          fmt::format("{}: tensor {} has a shape entry that is not a non-negative integer", what, q));
    if (v > static_cast<uint64_t>(INT64_MAX)) overflow = true;
    e.shape.push_back(static_cast<int64_t>(std::min<uint64_t>(v, INT64_MAX)));
    if (__builtin_mul_overflow(numel, v, &numel)) overflow = true;
  }
  uint64_t nbytes = 0;
  if (overflow || numel > static_cast<uint64_t>(INT64_MAX) ||
      __builtin_mul_overflow(numel, info->size, &nbytes))
    throw SafetensorsError(
        fmt::format("{}: tensor {} has shape {}, too large to exist", what, q, shape_str(e.shape)));

  const Json& offsets = field("data_offsets");
  uint64_t b = 0, en = 0;
  if (!offsets.is_array() || offsets.size() != 2 || !as_u64(offsets[0], &b) || !as_u64(offsets[1], &en))
    throw SafetensorsError(
        fmt::format("{}: tensor {} has data_offsets that are not two non-negative integers", what, q));
  if (en < b)
    throw SafetensorsError(
        fmt::format("{}: tensor {} has data_offsets [{}, {}] that end before they begin", what, q, b, en));
  if (en > data_len)
    throw SafetensorsError(
        fmt::format("{}: tensor {} has data_offsets [{}, {}] past the end of the data ({} bytes)", what, q, b,
                    en, data_len));
  if (en - b != nbytes)
    throw SafetensorsError(fmt::format("{}: tensor {} holds {} bytes, but shape {} of {} needs {}", what, q,
                                       en - b, shape_str(e.shape), info->name, nbytes));
  e.begin = data_start + b;
  e.end = data_start + en;
  return e;
}

}  // namespace

const char* dtype_name(DType t) {
  for (const auto& d : kDTypes)
    if (d.dtype == t) return d.name;
  return "?";
}

std::size_t dtype_size(DType t) {
  for (const auto& d : kDTypes)
    if (d.dtype == t) return d.size;
  return 0;
}

bool is_float(DType t) {
  return t == DType::F64 || t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

int64_t Entry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Header parse(const std::byte* data, std::size_t size, std::string_view what) {
  if (size < 8)
    throw SafetensorsError(
        fmt::format("{}: file of {} bytes is too short to hold a safetensors header", what, size));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(data[i]);  // little-endian u64
  if (n > kMaxHeaderBytes)
    throw SafetensorsError(
        fmt::format("{}: header length {} exceeds the limit of {} bytes", what, n, kMaxHeaderBytes));
  if (n > size - 8)
    throw SafetensorsError(
        fmt::format("{}: header length {} runs past the end of the file ({} bytes)", what, n, size));
  if (n == 0 || static_cast<char>(data[8]) != '{')
    throw SafetensorsError(fmt::format("{}: header does not start with a JSON object", what));

  const Json root = parse_json(data + 8, static_cast<std::size_t>(n), what);
  if (!root.is_object()) throw SafetensorsError(fmt::format("{}: header is not a JSON object", what));

  Header h;
  h.data_start = 8 + n;
  const uint64_t data_len = size - h.data_start;
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object())
        throw SafetensorsError(fmt::format("{}: __metadata__ is not an object of strings", what));
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string())
          throw SafetensorsError(
              fmt::format("{}: __metadata__ entry {} is not a string", what, name_str(m.key())));
        h.metadata.emplace_back(m.key(), m.value().get<std::string>());
      }
      continue;
    }
    h.tensors.push_back(parse_entry(it.key(), it.value(), h.data_start, data_len, what));
  }

  // The data ranges, in offset order, must tile the buffer exactly (the Rust crate's rule).
  std::stable_sort(h.tensors.begin(), h.tensors.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = h.data_start;
  const Entry* prev = nullptr;
  for (const Entry& e : h.tensors) {
    if (e.begin < pos)
      throw SafetensorsError(fmt::format("{}: the data of tensors {} and {} overlap", what,
                                         name_str(prev->name), name_str(e.name)));
    if (e.begin > pos)
      throw SafetensorsError(fmt::format("{}: data bytes {} to {} before tensor {} belong to no tensor", what,
                                         pos - h.data_start, e.begin - h.data_start, name_str(e.name)));
    pos = e.end;
    prev = &e;
  }
  if (pos != size)
    throw SafetensorsError(
        fmt::format("{}: the last {} bytes of the file belong to no tensor", what, size - pos));
  return h;
}

float half_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  uint32_t out;
  if (exponent == 0x1f) {  // inf / NaN (payload kept)
    out = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {  // normal: rebias 15 -> 127
    out = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {  // signed zero
    out = sign;
  } else {             // subnormal: mantissa * 2^-24, normalised
    uint32_t e = 113;  // exponent of 2^-14 in float32 (127 - 14)
    while (!(mantissa & 0x400u)) {
      mantissa <<= 1;
      --e;
    }
    out = sign | (e << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &out, sizeof f);
  return f;
}

float bfloat16_to_float(uint16_t bits) {
  const uint32_t out = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &out, sizeof f);
  return f;
}

void to_float32(const Entry& e, const std::byte* file, float* out) {
  const std::byte* p = file + e.begin;
  const int64_t n = e.numel();
  switch (e.dtype) {
    case DType::F32:
      if (n > 0) std::memcpy(out, p, static_cast<std::size_t>(n) * 4);
      return;
    case DType::F64:
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, 8);
        out[i] = static_cast<float>(d);
      }
      return;
    case DType::F16:
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, p + 2 * i, 2);
        out[i] = e.dtype == DType::F16 ? half_to_float(b) : bfloat16_to_float(b);
      }
      return;
    default:
      throw SafetensorsError(
          fmt::format("tensor {} of dtype {} is not a float tensor", name_str(e.name), dtype_name(e.dtype)));
  }
}

}  // namespace dmdbench::safetensors
