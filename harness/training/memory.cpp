#include "harness/training/memory.h"

#include <c10/core/CPUAllocator.h>

#include <atomic>

#include "models/compat.h"

namespace dmdbench::memory {
namespace {

std::atomic<int64_t> g_live{0}, g_peak{0}, g_allocs{0};
std::atomic<bool> g_installed{false};

struct Tracked {
  c10::DataPtr inner;
  std::size_t bytes;
};

void release(void* ctx) {
  auto* t = static_cast<Tracked*>(ctx);
  g_live -= static_cast<int64_t>(t->bytes);
  delete t;  // frees the inner allocation through its own deleter
}

class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* inner) : inner_(inner) {}
  c10::DataPtr allocate(std::size_t n) DMDBENCH_ALLOCATOR_CONST override {
    c10::DataPtr p = inner_->allocate(n);
    void* data = p.get();
    const c10::Device device = p.device();
    const int64_t live = g_live += static_cast<int64_t>(n);
    ++g_allocs;
    for (int64_t peak = g_peak.load(); live > peak && !g_peak.compare_exchange_weak(peak, live);) {
    }
    return {data, new Tracked{std::move(p), n}, &release, device};
  }
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
