// The CPU allocator (harness/training/memory.h): live and peak bytes count the blocks in use, and a freed
// block is handed out again for the next request of its size.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "harness/training/memory.h"

namespace memory = dmdbench::memory;

TEST(Memory, FreedBlocksAreReusedBySizeAndOnlyBlocksInUseCount) {
  memory::install_cpu_tracking();
  const int64_t before = memory::cpu_live_bytes();
  const void* first = nullptr;
  {
    torch::Tensor a = torch::empty({1 << 18});  // 1 MiB
    first = a.data_ptr();
    EXPECT_EQ(memory::cpu_live_bytes() - before, 1 << 20);
  }
  EXPECT_EQ(memory::cpu_live_bytes(), before);  // kept for reuse, not counted
  memory::reset_cpu_peak();
  torch::Tensor other = torch::empty({1 << 17});  // another size does not take the block
  EXPECT_NE(other.data_ptr(), first);
  torch::Tensor same = torch::empty({1 << 18});  // the same size does
  EXPECT_EQ(same.data_ptr(), first);
  torch::Tensor again = torch::empty({1 << 18});  // and only once
  EXPECT_NE(again.data_ptr(), first);
  EXPECT_EQ(memory::cpu_live_bytes() - before, (1 << 19) + 2 * (1 << 20));
  EXPECT_EQ(memory::cpu_peak_bytes(), memory::cpu_live_bytes());
}
