// Tensor memory accounting on CPU: a wrapper around LibTorch's CPU allocator that counts live and peak bytes.
// Installed once per process (benchmarks, runs); peaks can be reset around a phase to measure it alone.
#pragma once

#include <cstdint>

namespace dmdbench::memory {

// Installs the counting allocator in front of LibTorch's CPU allocator (idempotent).
void install_cpu_tracking();
int64_t cpu_live_bytes();
int64_t cpu_peak_bytes();
void reset_cpu_peak();  // peak := live
int64_t cpu_allocations();

}  // namespace dmdbench::memory
