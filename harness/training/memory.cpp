#include "harness/training/memory.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <atomic>
#include <mutex>
#include <unordered_map>

#include "models/compat.h"

namespace dmdbench::memory {
namespace {

std::atomic<int64_t> g_live{0}, g_peak{0}, g_allocs{0};
std::atomic<bool> g_installed{false};

// Every allocation's context is its data pointer (c10's own alloc_cpu/free_cpu, as the default CPU allocator
// uses), so that LibTorch's raw_allocate/raw_deallocate (oneDNN's GELU in BERT calls them) work through the
// counter: the sizes live in a table keyed by the pointer.
std::mutex g_sizes_mutex;
std::unordered_map<void*, std::size_t>& sizes() {
  static auto* table = new std::unordered_map<void*, std::size_t>();
  return *table;
}

void release_raw(void* data) {
  std::size_t bytes = 0;
  {
    std::lock_guard<std::mutex> lock(g_sizes_mutex);
    auto it = sizes().find(data);
    if (it != sizes().end()) bytes = it->second, sizes().erase(it);
  }
  g_live -= static_cast<int64_t>(bytes);
  c10::free_cpu(data);
}

class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* inner) : inner_(inner) {}
  c10::DataPtr allocate(std::size_t n) DMDBENCH_ALLOCATOR_CONST override {
    void* data = c10::alloc_cpu(n);
    const int64_t live = g_live += static_cast<int64_t>(n);
    ++g_allocs;
    for (int64_t peak = g_peak.load(); live > peak && !g_peak.compare_exchange_weak(peak, live);) {
    }
    {
      std::lock_guard<std::mutex> lock(g_sizes_mutex);
      sizes()[data] = n;
    }
    return {data, data, &release_raw, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release_raw; }
  DMDBENCH_ALLOCATOR_COPY_DATA(inner_)

 private:
  c10::Allocator* inner_;
};

}  // namespace

void install_cpu_tracking() {
  bool expected = false;
  if (!g_installed.compare_exchange_strong(expected, true)) return;
  static CountingAllocator alloc(c10::GetCPUAllocator());
  c10::SetCPUAllocator(&alloc, /*priority=*/100);
}
int64_t cpu_live_bytes() { return g_live; }
int64_t cpu_peak_bytes() { return g_peak; }
void reset_cpu_peak() { g_peak = g_live.load(); }
int64_t cpu_allocations() { return g_allocs; }

}  // namespace dmdbench::memory
