// libFuzzer target for the restricted unpickler: any input must parse or raise PickleError; never crash, hang,
// or hand out an array view outside the input. Build: -DDMDBENCH_FUZZ=ON with clang (see harness/CMakeLists.txt).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "harness/io/pickle.h"

namespace pk = dmdbench::pickle;

namespace {

// Touches every byte an array or bytes value points at (ASan reports a view past the input) and every accessor.
uint64_t walk(const pk::Value& v, int depth = 0) {
  uint64_t h = v.type_name().size();
  if (const auto* a = std::get_if<pk::NdArray>(&v.v)) {
    for (std::size_t i = 0; i < a->nbytes; ++i) h += static_cast<uint8_t>(a->data[i]);
    h += static_cast<uint64_t>(a->numel());
  } else if (const auto* b = std::get_if<pk::Bytes>(&v.v)) {
    for (std::size_t i = 0; i < b->size; ++i) h += static_cast<uint8_t>(b->data[i]);
  } else if (const auto* l = std::get_if<pk::List>(&v.v)) {
    for (const auto& x : *l) h += walk(x, depth + 1);
  } else if (const auto* t = std::get_if<pk::Tuple>(&v.v)) {
    for (const auto& x : t->items) h += walk(x, depth + 1);
  } else if (const auto* d = std::get_if<pk::Dict>(&v.v)) {
    for (const auto& [k, x] : *d) h += walk(k, depth + 1) + walk(x, depth + 1);
    h += v.find("train") != nullptr;
  } else if (const auto* o = std::get_if<pk::Object>(&v.v)) {
    for (const auto& x : o->args) h += walk(x, depth + 1);
  }
  try {
    const double x = v.number();
    h += x > 0 ? 1 : 2;
  } catch (const pk::PickleError&) {
  }
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const pk::GlobalPolicy policy = pk::GlobalPolicy::numpy();
  // The input is copied so that ASan sees its exact bounds.
  auto* copy = new std::byte[size ? size : 1];
  if (size) std::memcpy(copy, data, size);
  try {
    const pk::Value v = pk::loads(copy, size, nullptr, policy, [](const pk::Value& pid) { return pid; });
    volatile uint64_t sink = walk(v);
    (void)sink;
  } catch (const pk::PickleError&) {
  }
  delete[] copy;
  return 0;
}
