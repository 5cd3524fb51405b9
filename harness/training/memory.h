// Tensor memory on CPU: an allocator in front of LibTorch's that counts live and peak bytes and keeps freed
// blocks by size for reuse (a training step reallocates the same sizes every step). Installed once per
// process (dmdbench-torch's main); peaks can be reset around a phase to measure it alone.
#pragma once

#include <cstdint>

namespace dmdbench::memory {

// Installs the counting, caching allocator in front of LibTorch's CPU allocator (idempotent).
void install_cpu_tracking();
int64_t cpu_live_bytes();
int64_t cpu_peak_bytes();
void reset_cpu_peak();  // peak := live
int64_t cpu_allocations();

}  // namespace dmdbench::memory
