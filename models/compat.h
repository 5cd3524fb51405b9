// The one place for differences between LibTorch 1.13 (Debian, CPU) and LibTorch 2.x (PyTorch wheels, CUDA).
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cstddef>
#include <cstdint>
#include <mutex>

#define DMD_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// c10::Allocator: allocate() is const in 1.x and non-const in 2.x; 2.3+ adds a pure virtual copy_data().
#if TORCH_VERSION_MAJOR >= 2
#define DMDBENCH_ALLOCATOR_CONST
#if TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 3
#define DMDBENCH_ALLOCATOR_COPY_DATA(inner)                                       \
  void copy_data(void* dest, const void* src, std::size_t count) const override { \
    inner->copy_data(dest, src, count);                                           \
  }
#else
#define DMDBENCH_ALLOCATOR_COPY_DATA(inner)
#endif
#else
#define DMDBENCH_ALLOCATOR_CONST const
#define DMDBENCH_ALLOCATOR_COPY_DATA(inner)
#endif

namespace dmdbench::models::compat {

// Where draw_seed takes its seeds on one thread while jobs.h runs a job: the seeds the job would draw in a
// serial forward, drawn before in that order by the calling thread (next..end), or (counting) whatever supply
// was there before (`outer`; none: the default generator), counted.
struct SeedSupply {
  const uint64_t* next = nullptr;
  const uint64_t* end = nullptr;
  bool counting = false;
  int64_t count = 0;            // seeds drawn while counting
  SeedSupply* outer = nullptr;  // the supply this one was installed over
};
inline thread_local SeedSupply* seed_supply = nullptr;

// A 64-bit seed drawn from LibTorch's default CPU generator, so that kernels with their own counter-based
// random streams (the fused attention dropout) follow torch::manual_seed like every other random op.
inline uint64_t draw_seed() {
  SeedSupply* s = seed_supply;
  for (; s != nullptr && s->counting; s = s->outer) ++s->count;
  if (s != nullptr) {
    TORCH_CHECK(s->next != s->end, "a parallel job drew more random seeds than in its serial forward");
    return *s->next++;
  }
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get<at::CPUGeneratorImpl>()->random64();
}

// Read-only float pointer: 2.1+ has const_data_ptr; 1.13 only data_ptr.
inline const float* const_float_ptr(const torch::Tensor& t) {
#if DMD_TORCH_AT_LEAST(2, 1)
  return t.const_data_ptr<float>();
#else
  return t.data_ptr<float>();
#endif
}

// Autocast state of one device type (CPU or CUDA): 2.4+ has the device-type API, 1.13 one function per device.
inline bool autocast_enabled(c10::DeviceType type) {
#if DMD_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(type);
#else
  return type == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
#endif
}

inline void set_autocast(c10::DeviceType type, bool enabled, c10::ScalarType dtype) {
#if DMD_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(type, enabled);
  at::autocast::set_autocast_dtype(type, dtype);
#else
  if (type == c10::DeviceType::CPU) {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  } else {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  }
#endif
}

// Mixed precision for a scope, like `with torch.autocast(device_type, dtype)`: the autocast-listed ops (matrix
// products, linear) run in `dtype`, the precision-sensitive ones (softmax, losses, norms) in float32. Inactive when
// !enabled. Our fused CPU float32 kernels step aside while CPU autocast is on (ops.cpp, transformer.cpp).
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType type, bool enabled, c10::ScalarType dtype = c10::ScalarType::BFloat16)
      : type_(type), active_(enabled) {
    if (!active_) return;
    was_enabled_ = autocast_enabled(type_);
    set_autocast(type_, true, dtype);
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!active_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    set_autocast(type_, was_enabled_, c10::ScalarType::BFloat16);
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType type_;
  bool active_, was_enabled_ = false;
};

}  // namespace dmdbench::models::compat
