#include "harness/training/memory.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <atomic>
#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "models/compat.h"

namespace dmdbench::memory {
namespace {

std::atomic<int64_t> g_live{0}, g_peak{0}, g_allocs{0};
std::atomic<bool> g_installed{false};

// Freed blocks are kept by exact size and handed out again: a training step frees and reallocates the same few
// hundred sizes every step, and glibc's malloc spent ~6% of the step on them. At most kCacheLimitBytes are kept
// (beyond that, blocks go back to malloc). Live and peak bytes count the blocks in use only.
constexpr int64_t kCacheLimitBytes = int64_t{1} << 30;

// Every block carries its size in a header of kHeaderBytes in front of the data (which keeps c10's 64-byte
// alignment), so that freeing needs no table. The allocation's context is its data pointer (as c10's default
// CPU allocator has it), so LibTorch's raw_allocate/raw_deallocate (oneDNN's GELU in BERT calls them) work
// through the counter.
constexpr std::size_t kHeaderBytes = 64;
static_assert(kHeaderBytes % alignof(std::max_align_t) == 0 && kHeaderBytes >= sizeof(std::size_t));

std::size_t& size_of_block(void* data) {
  return *reinterpret_cast<std::size_t*>(static_cast<char*>(data) - kHeaderBytes);
}

struct Blocks {
  std::mutex mutex;
  std::unordered_map<std::size_t, std::vector<void*>> free;  // kept for reuse, by size
  int64_t cached_bytes = 0;
};
Blocks& blocks() {
  static auto* b = new Blocks();  // never destroyed: tensors may be freed during static destruction
  return *b;
}

void release_raw(void* data) {
  if (data == nullptr) return;
  const std::size_t bytes = size_of_block(data);
  g_live -= static_cast<int64_t>(bytes);
  Blocks& b = blocks();
  {
    std::lock_guard<std::mutex> lock(b.mutex);
    if (b.cached_bytes + static_cast<int64_t>(bytes) <= kCacheLimitBytes) {
      b.free[bytes].push_back(data);
      b.cached_bytes += static_cast<int64_t>(bytes);
      return;
    }
  }
  c10::free_cpu(static_cast<char*>(data) - kHeaderBytes);
}

class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* inner) : inner_(inner) {}
  c10::DataPtr allocate(std::size_t n) DMDBENCH_ALLOCATOR_CONST override {
    Blocks& b = blocks();
    void* data = nullptr;
    {
      std::lock_guard<std::mutex> lock(b.mutex);
      auto it = b.free.find(n);
      if (it != b.free.end() && !it->second.empty()) {
        data = it->second.back();
        it->second.pop_back();
        b.cached_bytes -= static_cast<int64_t>(n);
      }
    }
    if (data == nullptr) {
      data = static_cast<char*>(c10::alloc_cpu(n + kHeaderBytes)) + kHeaderBytes;
      size_of_block(data) = n;
    }
    const int64_t live = g_live += static_cast<int64_t>(n);
    ++g_allocs;
    for (int64_t peak = g_peak.load(); live > peak && !g_peak.compare_exchange_weak(peak, live);) {
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
