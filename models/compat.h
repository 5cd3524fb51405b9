// The one place for differences between LibTorch 1.13 (Debian, CPU) and LibTorch 2.x (PyTorch wheels, CUDA).
#pragma once

#include <ATen/CPUGeneratorImpl.h>
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

// A 64-bit seed drawn from LibTorch's default CPU generator, so that kernels with their own counter-based
// random streams (the fused attention dropout) follow torch::manual_seed like every other random op.
inline uint64_t draw_seed() {
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

}  // namespace dmdbench::models::compat
