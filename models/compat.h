// The one place for differences between LibTorch 1.13 (Debian, CPU) and LibTorch 2.x (PyTorch wheels, CUDA).
#pragma once

#include <torch/version.h>

// c10::Allocator: allocate() is const in 1.x and non-const in 2.x; 2.3+ adds a pure virtual copy_data().
#if TORCH_VERSION_MAJOR >= 2
#define DMDBENCH_ALLOCATOR_CONST
#if TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 3
#define DMDBENCH_ALLOCATOR_COPY_DATA(inner)                                   \
  void copy_data(void* dest, const void* src, std::size_t count) const override { \
    inner->copy_data(dest, src, count);                                       \
  }
#else
#define DMDBENCH_ALLOCATOR_COPY_DATA(inner)
#endif
#else
#define DMDBENCH_ALLOCATOR_CONST const
#define DMDBENCH_ALLOCATOR_COPY_DATA(inner)
#endif
