// libFuzzer target for the safetensors header parser: any input must parse or raise SafetensorsError; never
// crash, hang, or hand out a byte range outside the input. Build: -DDMDBENCH_FUZZ=ON with clang (see
// harness/CMakeLists.txt). Run, with a scratch corpus directory first so that new inputs land there:
//   build-fuzz/harness/fuzz_safetensors -dict=tests/fuzz/safetensors.dict -max_len=8192 SCRATCH \
//       tests/fuzz/corpus_safetensors
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "harness/io/safetensors.h"

namespace st = dmdbench::safetensors;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The input is copied so that ASan sees its exact bounds.
  auto* copy = new std::byte[size ? size : 1];
  if (size) std::memcpy(copy, data, size);
  try {
    const st::Header h = st::parse(copy, size, "fuzz");
    uint64_t sink = h.metadata.size();
    uint64_t prev_end = h.data_start;
    for (const st::Entry& e : h.tensors) {
      // The ranges tile the data in order and match numel x dtype size.
      if (e.begin != prev_end || e.end < e.begin || e.end > size) __builtin_trap();
      if (static_cast<uint64_t>(e.numel()) * st::dtype_size(e.dtype) != e.end - e.begin) __builtin_trap();
      prev_end = e.end;
      if (st::is_float(e.dtype)) {
        std::vector<float> out(static_cast<std::size_t>(e.numel()));
        st::to_float32(e, copy, out.data());
        for (float f : out) sink += f > 0;
      } else {
        for (uint64_t i = e.begin; i < e.end; ++i) sink += static_cast<uint8_t>(copy[i]);
      }
    }
    if (prev_end != size) __builtin_trap();
    volatile uint64_t keep = sink;
    (void)keep;
  } catch (const st::SafetensorsError&) {
  }
  delete[] copy;
  return 0;
}
